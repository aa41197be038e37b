"""EspeakTextToSpeech: real espeak-ng Hebrew audio, spawned off the event loop, bounded,
and killed on cancel or timeout."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import numpy as np
import pytest

from tests.unit.providers.conftest import needs_espeak
from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers import espeak_tts
from voicebot.providers.espeak_tts import EspeakTextToSpeech

LONG_TEXT = " ".join(["שלום וברכה, אנחנו מתקשרים לגבי הפגישה שקבענו בשבוע הבא."] * 8)


def track_processes(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Record every espeak-ng process started."""
    started: list[subprocess.Popen[bytes]] = []
    original: Callable[..., Any] = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = original(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(espeak_tts.subprocess, "Popen", spy)
    return started


def _wait_until_started(started: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 5
    while not started and time.monotonic() < deadline:
        time.sleep(0.001)


@needs_espeak
async def test_produces_real_hebrew_audio_at_22050() -> None:
    """Hebrew text becomes over a second of non-silent PCM16 at 22.05 kHz, in several chunks."""
    tts = EspeakTextToSpeech()
    chunks = [chunk async for chunk in tts.synthesize("שלום, מה שלומך היום?")]
    assert tts.sample_rate_hz == 22_050
    assert len(chunks) > 1 and all(len(c) % 2 == 0 for c in chunks)
    samples = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float64)
    assert samples.size / 22_050 > 1.0
    assert np.sqrt(np.mean(samples**2)) > 500


@needs_espeak
async def test_text_starting_with_a_dash_is_spoken_not_parsed() -> None:
    """Text goes in on stdin, so a leading dash is not taken for an option."""
    tts = EspeakTextToSpeech()
    audio = b"".join([c async for c in tts.synthesize("--help מה קורה")])
    assert len(audio) > 22_050


@needs_espeak
async def test_cancel_kills_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelling a synthesis while espeak-ng runs kills and reaps it."""
    started = track_processes(monkeypatch)
    tts = EspeakTextToSpeech()

    async def consume() -> None:
        async with aclosing(tts.synthesize(LONG_TEXT * 4)) as chunks:
            async for _ in chunks:
                pass

    task = asyncio.create_task(consume())
    await asyncio.to_thread(_wait_until_started, started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(started) == 1
    assert started[0].returncode is not None and started[0].returncode < 0


async def test_spawning_never_runs_on_the_event_loop_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """espeak-ng is started from a worker thread, so a fork never stalls the live calls."""
    threads: list[str] = []
    original = subprocess.Popen
    true = shutil.which("true") or "/bin/true"

    def spy(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        threads.append(threading.current_thread().name)
        return original([true], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    monkeypatch.setattr(espeak_tts.subprocess, "Popen", spy)
    monkeypatch.setattr(espeak_tts.shutil, "which", lambda _: true)
    tts = EspeakTextToSpeech()
    with pytest.raises(ProviderError):  # `true` writes no WAV
        async for _ in tts.synthesize("שלום"):
            pass
    assert threads and all(name.startswith("espeak") for name in threads)


@needs_espeak
async def test_concurrency_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """With max_concurrency=1, a second espeak-ng starts only after the first has exited."""
    started = track_processes(monkeypatch)
    alive_at_spawn: list[int] = []
    spawn = espeak_tts.subprocess.Popen

    def counting(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        alive_at_spawn.append(sum(p.poll() is None for p in started))
        process: subprocess.Popen[bytes] = spawn(*args, **kwargs)
        return process

    monkeypatch.setattr(espeak_tts.subprocess, "Popen", counting)
    tts = EspeakTextToSpeech(max_concurrency=1)

    async def run(text: str) -> None:
        async for _ in tts.synthesize(text):
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as group:
        group.create_task(run(LONG_TEXT))
        group.create_task(run(LONG_TEXT))
    assert len(started) == 2
    assert alive_at_spawn == [0, 0]


@needs_espeak
async def test_timeout_raises_provider_timeout() -> None:
    """A synthesis longer than its timeout raises ProviderTimeoutError."""
    tts = EspeakTextToSpeech(timeout_s=0.001)
    with pytest.raises(ProviderTimeoutError):
        async for _ in tts.synthesize(LONG_TEXT):
            await asyncio.sleep(0.01)


async def test_missing_executable_is_reported() -> None:
    """Without the binary, available() is False and synthesis raises ProviderError."""
    tts = EspeakTextToSpeech(executable="espeak-ng-not-installed")
    assert not EspeakTextToSpeech.available("espeak-ng-not-installed")
    with pytest.raises(ProviderError):
        async for _ in tts.synthesize("שלום"):
            pass
