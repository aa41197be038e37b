"""BatchRecognizer: a batch SpeechToText behind the RecognitionStream the turn loop uses."""

from __future__ import annotations

import pytest

from tests.unit.providers.conftest import as_heard, needs_espeak, speak
from voicebot.errors import InvalidStateError
from voicebot.providers.openai_stt import OpenAISpeechToText
from voicebot.providers.recognition import BatchRecognizer, BufferedRecognitionStream
from voicebot.testing.provider_sim import ProviderSim

FRAME_BYTES_8K = 320  # 20 ms of PCM16 at 8 kHz


@needs_espeak
async def test_frames_pushed_then_finish_transcribes_once(sim: ProviderSim) -> None:
    """20 ms frames pushed one by one are transcribed in one request on finish()."""
    phrase = "כן, מתאים לי ביום ראשון"
    sim.register_phrase(phrase, await speak(phrase), 22_050)
    recognizer = BatchRecognizer(OpenAISpeechToText(sim.endpoint("stt")))
    stream = recognizer.open_stream(sample_rate_hz=8000, language="he")
    audio = as_heard(await speak(phrase), rate_hz=8000)
    for start in range(0, len(audio), FRAME_BYTES_8K):
        stream.push(audio[start : start + FRAME_BYTES_8K])
    assert [p async for p in stream.partials()] == []
    transcript = await stream.finish()
    await recognizer.aclose()
    assert transcript.text == phrase
    assert sim.requests["stt"] == 1


async def test_buffer_is_capped_and_closed_streams_refuse_audio(sim: ProviderSim) -> None:
    """Audio past the utterance cap is dropped; push after aclose raises."""
    stt = OpenAISpeechToText(sim.endpoint("stt"))
    stream = BufferedRecognitionStream(stt, sample_rate_hz=8000, max_utterance_ms=100)
    for _ in range(10):
        stream.push(b"\x00\x01" * 160)
    assert stream.buffered_ms == 100
    assert stream.dropped_bytes == 10 * 320 - 1600
    await stream.aclose()
    with pytest.raises(InvalidStateError):
        stream.push(b"\x00\x00")
    await stt.aclose()
    assert sim.requests["stt"] == 0
