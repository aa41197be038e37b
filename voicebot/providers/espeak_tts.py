"""Local Hebrew text-to-speech with espeak-ng, run as a bounded pool of subprocesses.

The text goes in on stdin (never on a command line or through a shell); WAV comes out on
stdout. Spawning and waiting happen on the provider's own small thread pool, never on
the event loop: forking from a large server process on the loop thread stalls every live
call (it was 16 % of the server's samples at 200 calls). A sentence takes espeak-ng tens
of milliseconds, so its audio is read whole and handed out in chunks. A cancelled or
timed-out synthesis kills its process.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers.budget import Budget
from voicebot.providers.wav import PCM16_BITS_PER_SAMPLE, PCM16_BYTES_PER_SAMPLE, parse_wav_header

ESPEAK_EXECUTABLE = "espeak-ng"
# espeak-ng's fixed output rate; checked against every WAV header it writes.
ESPEAK_SAMPLE_RATE_HZ = 22_050
DEFAULT_VOICE = "he"
DEFAULT_RATE_WPM = 165
# espeak-ng is CPU-bound: at most this many run at once per process.
DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_TIMEOUT_S = 10.0
# Bytes of PCM16 handed out per chunk (~46 ms of audio at 22.05 kHz).
READ_CHUNK_BYTES = 2048
# How long a killed process may take to exit before we stop waiting for it.
KILL_GRACE_S = 1.0


class EspeakTextToSpeech:
    """A :class:`~voicebot.providers.base.TextToSpeech` over the espeak-ng command."""

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        rate_wpm: int = DEFAULT_RATE_WPM,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        executable: str = ESPEAK_EXECUTABLE,
    ) -> None:
        self._voice = voice
        self._rate_wpm = rate_wpm
        self._timeout_s = timeout_s
        self._executable = executable
        self._slots = asyncio.Semaphore(max_concurrency)
        # One thread per concurrent synthesis: spawn, feed, read and reap off the loop.
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="espeak")

    @staticmethod
    def available(executable: str = ESPEAK_EXECUTABLE) -> bool:
        """Whether espeak-ng can be run (it is on PATH)."""
        return shutil.which(executable) is not None

    @property
    def sample_rate_hz(self) -> int:
        return ESPEAK_SAMPLE_RATE_HZ

    @property
    def voice_id(self) -> str:
        return f"espeak:{self._voice}:{self._rate_wpm}"

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """PCM16 at 22.05 kHz for ``text``, in chunks; raises ProviderError types."""
        if not text.strip():
            return
        path = shutil.which(self._executable)
        if path is None:
            raise ProviderError(f"{self._executable} is not installed")
        budget = Budget(self._timeout_s)
        try:
            await budget.wait(self._slots.acquire())
        except TimeoutError as exc:
            raise _timeout() from exc
        try:
            pcm = await self._run(path, text, budget)
        finally:
            self._slots.release()
        for start in range(0, len(pcm), READ_CHUNK_BYTES):
            yield pcm[start : start + READ_CHUNK_BYTES]

    async def _run(self, path: str, text: str, budget: Budget) -> bytes:
        loop = asyncio.get_running_loop()
        process = await loop.run_in_executor(self._pool, self._spawn, path)
        try:
            out, _ = await budget.wait(
                loop.run_in_executor(self._pool, process.communicate, text.encode("utf-8"))
            )
        except TimeoutError as exc:
            raise _timeout() from exc
        finally:
            if process.poll() is None:
                process.kill()
                await loop.run_in_executor(self._pool, _reap, process)
        if process.returncode != 0:
            raise ProviderError(f"espeak-ng failed (exit {process.returncode})")
        data_offset = _data_offset(out)
        if data_offset is None:
            raise ProviderError("espeak-ng wrote no WAV header")
        pcm = out[data_offset:]
        return pcm[: len(pcm) - len(pcm) % PCM16_BYTES_PER_SAMPLE]

    def _spawn(self, path: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - fixed argv, text on stdin, no shell
            [
                path,
                "-v", self._voice,
                "-s", str(self._rate_wpm),
                "-b", "1",  # input is UTF-8
                "--stdin",
                "--stdout",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Stop the worker threads (every synthesis reaps its own process)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        return


def _data_offset(header: bytes) -> int | None:
    fmt = parse_wav_header(header)
    if fmt is None:
        return None
    if (fmt.sample_rate_hz, fmt.channels, fmt.bits_per_sample) != (
        ESPEAK_SAMPLE_RATE_HZ,
        1,
        PCM16_BITS_PER_SAMPLE,
    ):
        raise ProviderError(f"espeak-ng wrote unexpected audio format {fmt}")
    return fmt.data_offset


def _timeout() -> ProviderTimeoutError:
    return ProviderTimeoutError("espeak-ng timed out", details={"stage": "tts"})
