"""Local Hebrew text-to-speech with espeak-ng, run as a bounded pool of subprocesses.

The text goes in on stdin (never on a command line or through a shell); WAV comes out on
stdout and is streamed as PCM16 chunks as espeak-ng writes it. A cancelled synthesis
kills its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncGenerator, AsyncIterator

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
# Bytes read from espeak-ng's stdout per chunk (~46 ms of audio at 22.05 kHz).
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
        """Stream PCM16 at 22.05 kHz for ``text``; raises ProviderError types."""
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
            # aclosing: an abandoned synthesis must reach _run's finally (kill) now, not at GC.
            async with contextlib.aclosing(self._run(path, text, budget)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            self._slots.release()

    async def _run(self, path: str, text: str, budget: Budget) -> AsyncGenerator[bytes, None]:
        process = await asyncio.create_subprocess_exec(
            path,
            "-v", self._voice,
            "-s", str(self._rate_wpm),
            "-b", "1",  # input is UTF-8
            "--stdin",
            "--stdout",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert process.stdin is not None and process.stdout is not None  # noqa: S101 - PIPE was asked
        try:
            process.stdin.write(text.encode("utf-8"))
            await budget.wait(process.stdin.drain())
            process.stdin.close()
            header = b""
            data_offset: int | None = None
            carry = b""
            while True:
                chunk = await budget.wait(process.stdout.read(READ_CHUNK_BYTES))
                if not chunk:
                    break
                if data_offset is None:
                    header += chunk
                    data_offset = _data_offset(header)
                    if data_offset is None:
                        continue
                    chunk = header[data_offset:]
                data = carry + chunk
                whole = len(data) - len(data) % PCM16_BYTES_PER_SAMPLE
                carry = data[whole:]
                if whole:
                    yield data[:whole]
            returncode = await budget.wait(process.wait())
            if returncode != 0 or data_offset is None:
                raise ProviderError(f"espeak-ng failed (exit {returncode})")
        except TimeoutError as exc:
            raise _timeout() from exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ProviderError("espeak-ng exited early") from exc
        finally:
            if process.returncode is None:
                process.kill()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KILL_GRACE_S):
                        await process.wait()

    async def aclose(self) -> None:
        """Nothing to release: every synthesis owns and reaps its own process."""


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
