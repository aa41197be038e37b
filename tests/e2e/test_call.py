"""A whole call over real loopback HTTP and websocket: simulated Twilio caller, simulated
OpenAI-compatible STT, the server under uvicorn, espeak-ng TTS and the rule-based brain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect

from tests.e2e.conftest import call_server, hebrew_speech, recognising_sim
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.call.session import CallSession
from voicebot.config import Settings
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.twilio_caller import CallNotConnectedError, place_call

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "e2e-auth-token"
ANSWER = "כן, אפשר לדבר עכשיו"


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=3, phrases=[ANSWER]) as running:
        yield running


@pytest.fixture(params=["direct", "websockets-sansio"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, sim: ProviderSim
) -> AsyncIterator[tuple[str, Settings]]:
    """The server with its own websocket protocol (media taken in the read callback), and
    with uvicorn's (every message through receive(): the session's awaited path)."""
    async with call_server(
        tmp_path,
        sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        ws=None if request.param == "direct" else request.param,
        stt_timeout_s=1.0,
    ) as served:
        yield served


async def test_greeting_then_a_turn_then_dtmf(server: tuple[str, Settings]) -> None:
    """The agent greets first, answers Hebrew speech, takes DTMF, and stores the turns."""
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        assert call.metrics.first_agent_media_ms is not None
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
        speech = call.say(pcm16_to_ulaw(hebrew_speech(ANSWER)))
        await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
        assert speech.response_latency_ms is not None
        marks_before = len(call.metrics.marks)
        await call.wait_until(lambda: len(call.metrics.marks) > marks_before, 30)
        await call.send_dtmf("9")
        await asyncio.sleep(0.5)
        assert not call.metrics.protocol_errors
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=base) as http:
        calls = (await http.get("/api/v1/calls")).json()["items"]
        assert len(calls) == 1
        detail = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
    roles = [t["role"] for t in detail["turns"]]
    assert roles[:3] == ["assistant", "user", "assistant"]
    assert detail["turns"][1]["text"] == ANSWER
    assert "total" in detail["turns"][2]["latency"]
    assert detail["status"] == "completed"


async def test_bad_signature_is_403(server: tuple[str, Settings]) -> None:
    """A voice webhook signed with the wrong token is refused and creates no call."""
    base, _ = server
    with pytest.raises(CallNotConnectedError) as info:
        async with place_call(base, account_sid=ACCOUNT_SID, auth_token="wrong-token"):
            pass
    assert info.value.status_code == 403
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/api/v1/calls")).json()["items"] == []


async def test_forged_stream_token_is_rejected(server: tuple[str, Settings]) -> None:
    """A media stream whose start carries a forged token is closed with 1008."""
    base, settings = server
    ws_url = base.replace("http://", "ws://") + "/twilio/media"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(settings.media_stream_url, {})
    async with connect(ws_url, additional_headers={"X-Twilio-Signature": signature}) as ws:
        await ws.send('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
        await ws.send(
            '{"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {'
            '"streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],'
            '"customParameters": {"call_id": "1", "token": "v1.1.CA1.9999999999.forged"},'
            '"mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}'
        )
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 1008


async def test_malformed_frames_do_not_end_the_call(server: tuple[str, Settings]) -> None:
    """Garbage messages mid-call are skipped; the agent keeps sending audio."""
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
        for junk in ("{not json", '{"event": "media"}', '{"event": "nope"}', "[]"):
            await call._send(junk)
        before = call.metrics.agent_audio_ms
        await asyncio.sleep(0.6)
        assert call.metrics.agent_audio_ms > before or len(call.metrics.marks) >= 1
        assert not call.ended


async def test_barge_in_sends_clear_and_stops_audio(server: tuple[str, Settings]) -> None:
    """Caller speech over the greeting gets a `clear` quickly and no agent audio after it."""
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.agent_audio_ms > 300, 10)
        speech = call.say(pcm16_to_ulaw(hebrew_speech(ANSWER)))
        await call.wait_until(lambda: speech.clear_latency_ms is not None, 10)
        assert speech.barge_in
        assert speech.clear_latency_ms is not None
        assert speech.clear_latency_ms < 1000
        assert speech.audio_after_clear_ms == 0
        assert call.metrics.clears >= 1


async def test_status_callbacks_are_monotonic_and_idempotent(
    server: tuple[str, Settings],
) -> None:
    """A late `ringing` never overwrites `completed`; a replayed token is applied once."""
    base, settings = server
    validator = RequestValidator(AUTH_TOKEN)
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        call_sid = call.call_sid
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
    public = settings.public_base_url + "/twilio/status"

    async def post(status: str, token: str) -> int:
        form = {"CallSid": call_sid, "AccountSid": ACCOUNT_SID, "CallStatus": status}
        headers = {
            "X-Twilio-Signature": validator.compute_signature(public, form),
            "I-Twilio-Idempotency-Token": token,
        }
        async with httpx.AsyncClient(base_url=base) as http:
            return (await http.post("/twilio/status", data=form, headers=headers)).status_code

    assert await post("completed", "tok-1") == 204
    assert await post("ringing", "tok-2") == 204
    assert await post("completed", "tok-1") == 204
    async with httpx.AsyncClient(base_url=base) as http:
        item = (await http.get("/api/v1/calls")).json()["items"][0]
        detail = (await http.get(f"/api/v1/calls/{item['id']}")).json()
        forged = await http.post(
            "/twilio/status",
            data={"CallSid": call_sid, "CallStatus": "failed"},
            headers={"X-Twilio-Signature": "bogus"},
        )
    assert detail["status"] == "completed"
    assert forged.status_code == 403


async def test_stt_timeout_plays_the_apology_and_the_call_goes_on(
    server: tuple[str, Settings], sim: ProviderSim
) -> None:
    """When STT hangs past its timeout the caller hears the cached apology, never silence,
    and the call stays up."""
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
        sim.config.stt.hang = True
        first = call.say(pcm16_to_ulaw(hebrew_speech(ANSWER)))
        await call.wait_until(lambda: first.response_latency_ms is not None, 20)
        assert first.response_latency_ms is not None
        assert first.response_latency_ms >= 1000  # the STT timeout (1 s) passed first
        sim.config.stt.hang = False
        marks = len(call.metrics.marks)
        await call.wait_until(lambda: len(call.metrics.marks) > marks, 20)
        assert not call.ended
    async with httpx.AsyncClient(base_url=base) as http:
        item = (await http.get("/api/v1/calls")).json()["items"][0]
        turns = (await http.get(f"/api/v1/calls/{item['id']}")).json()["turns"]
    texts = [t["text"] for t in turns]
    assert any("סליחה" in text for text in texts)


async def test_forged_handshake_signature_is_refused(server: tuple[str, Settings]) -> None:
    """A websocket handshake carrying a wrong X-Twilio-Signature is refused before accept."""
    from websockets.exceptions import InvalidStatus

    base, _ = server
    ws_url = base.replace("http://", "ws://") + "/twilio/media"
    with pytest.raises(InvalidStatus):
        async with connect(ws_url, additional_headers={"X-Twilio-Signature": "forged"}):
            pass


async def test_caller_frames_are_taken_in_the_calls_log_context(
    server: tuple[str, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caller frames are processed in the call's structlog context (call SID bound), also
    when taken straight from the socket's read callback: what they start logs as the call."""
    seen: list[object] = []
    for name in ("on_media", "on_media_nowait"):
        original = getattr(CallSession, name)

        def recording(self: CallSession, ulaw: bytes, _original: Any = original) -> Any:
            seen.append(structlog.contextvars.get_contextvars().get("call_sid"))
            return _original(self, ulaw)

        monkeypatch.setattr(CallSession, name, recording)
    base, _ = server
    sid = "CA" + "7" * 32
    async with place_call(
        base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
    ) as call:
        await call.wait_until(lambda: len(seen) >= 25, 10)
    assert len(seen) >= 25
    assert set(seen) == {sid}
