"""EspeakTextToSpeech: real espeak-ng Hebrew audio, streamed, bounded and killed on cancel."""

from __future__ import annotations

import asyncio
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


def track_processes(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.subprocess.Process]:
    """Record every espeak-ng process started."""
    started: list[asyncio.subprocess.Process] = []
    original: Callable[..., Any] = asyncio.create_subprocess_exec

    async def spy(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        process: asyncio.subprocess.Process = await original(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(espeak_tts.asyncio, "create_subprocess_exec", spy)
    return started


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
    """Abandoning a synthesis after the first chunk kills and reaps espeak-ng."""
    started = track_processes(monkeypatch)
    tts = EspeakTextToSpeech()
    async with aclosing(tts.synthesize(LONG_TEXT)) as chunks:
        async for _ in chunks:
            break
    assert len(started) == 1
    assert started[0].returncode is not None


@needs_espeak
async def test_concurrency_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """With max_concurrency=1, two syntheses never run espeak-ng at the same time."""
    started = track_processes(monkeypatch)
    tts = EspeakTextToSpeech(max_concurrency=1)
    overlaps: list[int] = []

    async def run(text: str) -> None:
        async for _ in tts.synthesize(text):
            overlaps.append(sum(p.returncode is None for p in started))
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as group:
        group.create_task(run("אחת שתיים שלוש"))
        group.create_task(run("ארבע חמש שש"))
    assert len(started) == 2
    assert max(overlaps) == 1


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
