"""OpenAISpeechToText against the simulator over loopback HTTP with the real openai client."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.unit.providers.conftest import as_heard, needs_espeak, speak
from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers.openai_stt import OpenAISpeechToText
from voicebot.testing.provider_sim import ProviderSim

GREETING = "שלום, מה שלומך היום?"
# A busy call server: every event-loop turn waits behind other calls' work this long.
LOOP_TURN_S = 0.02
# Loop turns one upload of an utterance may wait for: the connection's request and
# response (the simulator answers in the same loop here). Sent in pieces it took 17.
MAX_UPLOAD_LOOP_TURNS = 8
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


async def test_upload_goes_out_in_one_piece_on_a_lagging_event_loop(sim: ProviderSim) -> None:
    """On a loop whose every turn is slow (a server busy with 100 calls), a 3 s WAV upload
    waits for a few loop turns, not one per multipart piece: sent in ~16 pieces it took 17
    turns, which under load outlasted the STT timeout (the provider saw the client give up
    mid-body, issue #10's fault run)."""
    stt = OpenAISpeechToText(sim.endpoint("stt", timeout_s=30.0))
    utterance = b"\x10\x00" * 8000 * 3
    await stt.transcribe(utterance, sample_rate_hz=8000)  # the connection is open now
    turns = 0

    async def busy_loop() -> None:
        nonlocal turns
        while True:
            turns += 1
            time.sleep(LOOP_TURN_S)  # noqa: ASYNC251 - the point: other work holding the loop
            await asyncio.sleep(0)

    lag = asyncio.create_task(busy_loop())
    await asyncio.sleep(0)
    turns = 0
    try:
        await stt.transcribe(utterance, sample_rate_hz=8000)
        used = turns
    finally:
        lag.cancel()
        await stt.aclose()
    assert sim.requests["stt"] == 2
    assert used <= MAX_UPLOAD_LOOP_TURNS, f"one upload waited {used} loop turns"
