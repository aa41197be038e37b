"""OpenAISpeechToText against the simulator over loopback HTTP with the real openai client."""

from __future__ import annotations

import time

import pytest

from tests.unit.providers.conftest import as_heard, needs_espeak, speak
from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers.openai_stt import OpenAISpeechToText
from voicebot.testing.provider_sim import ProviderSim

GREETING = "שלום, מה שלומך היום?"
BOOKING = "אני רוצה לקבוע פגישה ביום שלישי בבוקר"


@needs_espeak
async def test_transcription_returns_the_registered_phrase(sim: ProviderSim) -> None:
    """Noisy, padded 16 kHz speech of a registered phrase comes back as that phrase's text."""
    sim.register_phrase(GREETING, await speak(GREETING), 22_050)
    booking = await speak(BOOKING)
    sim.register_phrase(BOOKING, booking, 22_050)
    stt = OpenAISpeechToText(sim.endpoint("stt"))
    transcript = await stt.transcribe(as_heard(booking, rate_hz=16_000), sample_rate_hz=16_000)
    await stt.aclose()
    assert transcript.text == BOOKING
    assert transcript.language == "he"
    assert transcript.duration_ms is not None and transcript.duration_ms > 1000


@needs_espeak
async def test_unknown_audio_gets_the_default_transcript(sim: ProviderSim) -> None:
    """Audio matching nothing in the library is answered with the configured default text."""
    sim.register_phrase(GREETING, await speak(GREETING), 22_050)
    sim.config.default_transcript = "לא ברור"
    stt = OpenAISpeechToText(sim.endpoint("stt"))
    other = as_heard(await speak("כן"), rate_hz=8000)
    transcript = await stt.transcribe(other, sample_rate_hz=8000)
    await stt.aclose()
    assert transcript.text == "לא ברור"


async def test_empty_audio_makes_no_request(sim: ProviderSim) -> None:
    """An empty utterance is an empty transcript without a round trip."""
    stt = OpenAISpeechToText(sim.endpoint("stt"))
    transcript = await stt.transcribe(b"", sample_rate_hz=8000)
    await stt.aclose()
    assert transcript.text == ""
    assert sim.requests["stt"] == 0


async def test_hang_raises_timeout_within_the_endpoint_timeout(sim: ProviderSim) -> None:
    """A server that never answers costs at most the endpoint timeout."""
    sim.config.stt.hang = True
    stt = OpenAISpeechToText(sim.endpoint("stt", timeout_s=0.3))
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await stt.transcribe(b"\x01\x00" * 8000, sample_rate_hz=8000)
    await stt.aclose()
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("status", [500, 429])
async def test_http_errors_become_provider_errors_with_status(
    sim: ProviderSim, status: int
) -> None:
    """A 5xx or 429 answer is a ProviderError carrying the HTTP status."""
    sim.config.stt.error_rate = 1.0
    sim.config.stt.error_status = status
    stt = OpenAISpeechToText(sim.endpoint("stt"))
    with pytest.raises(ProviderError) as caught:
        await stt.transcribe(b"\x01\x00" * 8000, sample_rate_hz=8000)
    await stt.aclose()
    assert not isinstance(caught.value, ProviderTimeoutError)
    assert caught.value.details["status"] == status


async def test_wrong_key_is_rejected_without_leaking_it(sim: ProviderSim) -> None:
    """A bad key gives a 401 ProviderError whose message does not contain the key."""
    sim.config.api_key = "right-key"
    endpoint = sim.endpoint("stt")
    object.__setattr__(endpoint, "api_key", type(endpoint.api_key)("sk-wrong-secret"))
    stt = OpenAISpeechToText(endpoint)
    with pytest.raises(ProviderError) as caught:
        await stt.transcribe(b"\x01\x00" * 8000, sample_rate_hz=8000)
    await stt.aclose()
    assert caught.value.details["status"] == 401
    assert "sk-wrong-secret" not in str(caught.value)
