"""OpenAITextToSpeech: streamed raw PCM from the simulator's /audio/speech, with timeouts."""

from __future__ import annotations

import time

import numpy as np
import pytest

from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers.openai_tts import OpenAITextToSpeech
from voicebot.testing.provider_sim import ProviderSim

SENTENCE = "שלום, אני מתקשרת מחברת אלפא. יש לך דקה?"


async def test_pcm_streams_in_whole_sample_chunks(sim: ProviderSim) -> None:
    """Speech arrives as several even-length chunks of real (non-silent) 24 kHz audio."""
    tts = OpenAITextToSpeech(sim.endpoint("tts"), voice="alloy")
    chunks = [chunk async for chunk in tts.synthesize(SENTENCE)]
    await tts.aclose()
    assert tts.sample_rate_hz == 24_000
    assert len(chunks) > 3
    assert all(len(c) % 2 == 0 for c in chunks)
    samples = np.frombuffer(b"".join(chunks), dtype="<i2").astype(np.float64)
    assert samples.size / 24_000 > 1.0
    assert np.sqrt(np.mean(samples**2)) > 500


async def test_first_chunk_arrives_before_the_stream_ends(sim: ProviderSim) -> None:
    """With real-time pacing, the first chunk is yielded long before the last."""
    sim.config.tts_realtime = True
    sim.config.tts_chunk_ms = 100
    tts = OpenAITextToSpeech(sim.endpoint("tts"), voice="alloy")
    started = time.perf_counter()
    first_s = None
    async for _ in tts.synthesize("שלום רב לך"):
        first_s = first_s if first_s is not None else time.perf_counter() - started
    total_s = time.perf_counter() - started
    await tts.aclose()
    assert first_s is not None and first_s < total_s / 3


async def test_first_byte_timeout(sim: ProviderSim) -> None:
    """A slow first byte raises ProviderTimeoutError at the first-byte limit."""
    sim.config.tts.delay_ms = 3000
    tts = OpenAITextToSpeech(
        sim.endpoint("tts", timeout_s=5), voice="alloy", first_byte_timeout_s=0.2
    )
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        async for _ in tts.synthesize(SENTENCE):
            pass
    await tts.aclose()
    assert time.perf_counter() - started < 1.0


async def test_total_timeout_cuts_a_slow_stream(sim: ProviderSim) -> None:
    """Audio trickling in slower than the overall timeout allows ends in ProviderTimeoutError."""
    sim.config.tts_realtime = True
    tts = OpenAITextToSpeech(sim.endpoint("tts", timeout_s=0.4), voice="alloy")
    received = 0
    with pytest.raises(ProviderTimeoutError):
        async for chunk in tts.synthesize(SENTENCE):
            received += len(chunk)
    await tts.aclose()
    assert received > 0


async def test_server_error_is_a_provider_error(sim: ProviderSim) -> None:
    """A 500 from /audio/speech is a ProviderError with status 500."""
    sim.config.tts.error_rate = 1.0
    tts = OpenAITextToSpeech(sim.endpoint("tts"), voice="alloy")
    with pytest.raises(ProviderError) as caught:
        async for _ in tts.synthesize(SENTENCE):
            pass
    await tts.aclose()
    assert caught.value.details["status"] == 500


async def test_blank_text_yields_nothing_and_makes_no_request(sim: ProviderSim) -> None:
    """Whitespace-only text is no audio and no round trip."""
    tts = OpenAITextToSpeech(sim.endpoint("tts"), voice="alloy")
    assert [c async for c in tts.synthesize("  ")] == []
    await tts.aclose()
    assert sim.requests["tts"] == 0


@pytest.mark.parametrize("garbage", ["empty", "html"])
async def test_a_200_without_audio_is_a_provider_error(sim: ProviderSim, garbage: str) -> None:
    """A 200 with an empty body (silence, and no fallback voice) or an HTML page (played
    as PCM: a burst of noise) is a ProviderError, so the sentence goes to the fallback."""
    sim.config.tts_garbage = garbage
    tts = OpenAITextToSpeech(sim.endpoint("tts"), voice="alloy")
    with pytest.raises(ProviderError):
        async for _ in tts.synthesize(SENTENCE):
            pass
    await tts.aclose()
