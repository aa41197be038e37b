"""Fixtures for provider tests: a running OpenAI simulator and real Hebrew speech."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from voicebot.providers.espeak_tts import ESPEAK_SAMPLE_RATE_HZ, EspeakTextToSpeech
from voicebot.testing.provider_sim import ProviderSim, SimConfig

needs_espeak = pytest.mark.skipif(
    not EspeakTextToSpeech.available(), reason="espeak-ng is not installed"
)


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    """The simulator on a free loopback port, deterministic (seeded)."""
    async with ProviderSim(SimConfig(seed=7)) as running:
        yield running


async def speak(text: str) -> bytes:
    """Hebrew speech for ``text`` from espeak-ng: PCM16 at 22.05 kHz."""
    tts = EspeakTextToSpeech()
    return b"".join([chunk async for chunk in tts.synthesize(text)])


def as_heard(pcm16: bytes, *, rate_hz: int, pad_ms: int = 300, noise_rms: float = 150.0) -> bytes:
    """Resample espeak audio to ``rate_hz`` and add line noise and silence around it."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    count = samples.size * rate_hz // ESPEAK_SAMPLE_RATE_HZ
    positions = np.arange(count) * (ESPEAK_SAMPLE_RATE_HZ / rate_hz)
    resampled = np.interp(positions, np.arange(samples.size), samples)
    pad = np.zeros(rate_hz * pad_ms // 1000)
    signal = np.concatenate([pad, resampled, pad])
    noise = np.random.default_rng(3).normal(0.0, noise_rms, signal.size)
    return (signal + noise).clip(-32767, 32767).astype("<i2").tobytes()
