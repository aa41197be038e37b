"""The Twilio caller simulator against a tiny scripted Starlette server over real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from twilio.request_validator import RequestValidator

from voicebot.audio.codec import ULAW_SILENT_FRAME
from voicebot.telephony import twiml
from voicebot.telephony.events import (
    Media,
    Start,
    clear_message,
    mark_message,
    media_message,
    parse_event,
)
from voicebot.testing.twilio_api_sim import serve_on_loopback
from voicebot.testing.twilio_caller import SimulatedCall, place_call

ACCOUNT = "AC" + "b" * 32
TOKEN = "c" * 32
AGENT_FRAME = b"\x2a" * 160
SPEECH = b"\x10" * 160


@dataclass
class Peer:
    """What the scripted server saw, with the server's monotonic arrival times."""

    base_url: str = ""
    voice_form: dict[str, str] = field(default_factory=dict)
    voice_signature_ok: bool = False
    ws_signature_ok: bool = False
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    stream_sid: str = ""
    got: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self, name: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m["event"] == name]

    async def wait_for(self, name: str, count: int = 1, timeout_s: float = 3.0) -> float:
        """Wait until `count` messages of `name` arrived; return the last one's time."""
        async with asyncio.timeout(timeout_s):
            while len(self.events(name)) < count:
                self.got.clear()
                await self.got.wait()
        return self.events(name)[count - 1][0]


Script = Callable[[WebSocket, Peer], Awaitable[None]]


@pytest.fixture
def script() -> list[Script]:
    """The agent behaviour a test installs; by default it only listens."""
    return []


@pytest.fixture
async def peer(script: list[Script]) -> AsyncIterator[Peer]:
    """A Starlette app standing in for the voicebot server, on a loopback port."""
    state = Peer()
    validator = RequestValidator(TOKEN)

    async def voice(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        state.voice_form = form
        state.voice_signature_ok = validator.validate(
            state.base_url + "/twilio/voice", form, request.headers["X-Twilio-Signature"]
        )
        ws_url = state.base_url.replace("http://", "ws://") + "/twilio/media"
        return Response(twiml.connect_stream(ws_url, {"token": "tok-1"}), media_type="text/xml")

    async def media(ws: WebSocket) -> None:
        ws_url = state.base_url.replace("http://", "ws://") + "/twilio/media"
        state.ws_signature_ok = validator.validate(
            ws_url, {}, ws.headers.get("x-twilio-signature", "")
        )
        await ws.accept()
        agent = asyncio.create_task(script[0](ws, state)) if script else None
        try:
            while True:
                text = await ws.receive_text()
                message = json.loads(text)
                if message["event"] == "start":
                    state.stream_sid = message["streamSid"]
                state.messages.append((time.monotonic(), message))
                state.got.set()
        except WebSocketDisconnect:
            pass
        finally:
            if agent is not None:
                agent.cancel()

    app = Starlette(
        routes=[
            Route("/twilio/voice", voice, methods=["POST"]),
            WebSocketRoute("/twilio/media", media),
        ]
    )
    async with serve_on_loopback(app) as base_url:
        state.base_url = base_url
        yield state


def _call(peer: Peer) -> Any:
    return place_call(
        peer.base_url, account_sid=ACCOUNT, auth_token=TOKEN, call_sid="CA" + "1" * 32
    )


async def test_handshake_order_signatures_and_pacing(peer: Peer) -> None:
    """Signed webhook, signed wss handshake, connected → start → media at ~50 frames/s, stop."""
    async with _call(peer) as call:
        await asyncio.sleep(1.0)
        assert call.parameters == {"token": "tok-1"}
    await peer.wait_for("stop")
    assert peer.voice_signature_ok and peer.ws_signature_ok
    assert peer.voice_form["CallSid"] == "CA" + "1" * 32
    assert peer.voice_form["CallStatus"] == "in-progress"
    assert peer.voice_form["AccountSid"] == ACCOUNT
    kinds = [m["event"] for _, m in peer.messages]
    assert kinds[:2] == ["connected", "start"] and kinds[-1] == "stop"
    assert set(kinds[2:-1]) == {"media"}
    start = parse_event(json.dumps(peer.messages[1][1]))
    assert isinstance(start, Start) and start.custom_parameters == {"token": "tok-1"}
    assert start.media_format.encoding == "audio/x-mulaw" and start.tracks == ("inbound",)
    media = [parse_event(json.dumps(m)) for _, m in peer.events("media")]
    assert all(isinstance(m, Media) and m.payload == ULAW_SILENT_FRAME for m in media)
    assert [m.chunk for m in media if isinstance(m, Media)] == list(range(1, len(media) + 1))
    assert [m.timestamp_ms for m in media if isinstance(m, Media)][:3] == [20, 40, 60]
    sequence = [int(m["sequenceNumber"]) for _, m in peer.messages[1:]]
    assert sequence == list(range(1, len(sequence) + 1))
    times = [t for t, _ in peer.events("media")]
    rate_per_s = (len(times) - 1) / (times[-1] - times[0])
    assert 45 <= rate_per_s <= 55
    assert 45 <= len(media) <= 55


async def _send_agent_audio(ws: WebSocket, peer: Peer, frames: int, mark: str) -> float:
    for _ in range(frames):
        await ws.send_text(media_message(peer.stream_sid, AGENT_FRAME))
    await ws.send_text(mark_message(peer.stream_sid, mark))
    return time.monotonic()


async def test_mark_is_echoed_when_playback_reaches_it(peer: Peer, script: list[Script]) -> None:
    """A mark after 200 ms of audio returns ~200 ms later; one with nothing queued at once."""
    sent: dict[str, float] = {}

    async def agent(ws: WebSocket, state: Peer) -> None:
        await state.wait_for("start")
        sent["s1"] = await _send_agent_audio(ws, state, 10, "s1")
        await state.wait_for("mark")
        await ws.send_text(mark_message(state.stream_sid, "idle"))
        sent["idle"] = time.monotonic()

    script.append(agent)
    async with _call(peer) as call:
        await call.wait_for_mark("idle", timeout_s=3)
        first_audio_ms = call.metrics.first_agent_media_ms
    echoed = {m["mark"]["name"]: t for t, m in peer.events("mark")}
    assert 0.18 <= echoed["s1"] - sent["s1"] <= 0.30
    assert echoed["idle"] - sent["idle"] <= 0.05
    assert [name for _, name in call.metrics.marks] == ["s1", "idle"]
    assert first_audio_ms is not None and first_audio_ms < 100
    assert len(call.agent_audio) == 1600 and call.metrics.underruns == 0
    assert call.agent_audio_wav()[:4] == b"RIFF"


async def test_clear_drops_audio_and_echoes_pending_marks(peer: Peer, script: list[Script]) -> None:
    """Caller barges in; the agent's clear empties playback and its marks come back at once."""
    cleared: dict[str, float] = {}

    async def agent(ws: WebSocket, state: Peer) -> None:
        await state.wait_for("start")
        await _send_agent_audio(ws, state, 100, "long")
        while not any(
            parse_event(json.dumps(m)).payload != ULAW_SILENT_FRAME  # type: ignore[union-attr]
            for _, m in state.events("media")
        ):
            state.got.clear()
            await state.got.wait()
        await ws.send_text(clear_message(state.stream_sid))
        cleared["at"] = time.monotonic()

    script.append(agent)
    async with _call(peer) as call:
        await call.wait_until(lambda: call.playback.queued_ms > 1000, timeout_s=3)
        await asyncio.sleep(0.3)
        utterance = call.say(SPEECH * 10)
        await call.wait_for_mark("long", timeout_s=3)
        await asyncio.wait_for(utterance.done.wait(), timeout=3)
        assert call.playback.queued_ms == 0
    echo_time = next(t for t, m in peer.events("mark") if m["mark"]["name"] == "long")
    assert echo_time - cleared["at"] <= 0.05
    assert call.metrics.clears == 1
    assert utterance.barge_in
    assert utterance.clear_latency_ms is not None and utterance.clear_latency_ms < 100
    assert utterance.audio_after_clear_ms == 0


async def test_response_latency_is_measured_from_end_of_speech(
    peer: Peer, script: list[Script]
) -> None:
    """The agent answering right after the caller stops is measured as a short latency."""

    async def agent(ws: WebSocket, state: Peer) -> None:
        spoke = False
        while True:
            state.got.clear()
            await state.got.wait()
            last = state.messages[-1][1]
            if last["event"] != "media":
                continue
            silent = parse_event(json.dumps(last)).payload == ULAW_SILENT_FRAME  # type: ignore[union-attr]
            if not silent:
                spoke = True
            elif spoke:
                await _send_agent_audio(ws, state, 5, "answer")
                return

    script.append(agent)
    call: SimulatedCall
    async with _call(peer) as call:
        utterance = call.say(SPEECH * 15)
        await call.wait_for_mark("answer", timeout_s=3)
    assert utterance.onset_s is not None and utterance.end_s is not None
    assert 0.26 <= utterance.end_s - utterance.onset_s <= 0.32
    assert not utterance.barge_in
    assert utterance.response_latency_ms is not None and 15 <= utterance.response_latency_ms < 80


async def test_dtmf_and_server_hangup(peer: Peer, script: list[Script]) -> None:
    """DTMF reaches the server as Twilio shapes it; a server close ends the simulated call."""

    async def agent(ws: WebSocket, state: Peer) -> None:
        await state.wait_for("dtmf")
        await ws.close()

    script.append(agent)
    async with _call(peer) as call:
        await asyncio.sleep(0.05)
        await call.send_dtmf("7")
        await call.wait_until(lambda: call.ended, timeout_s=3)
    ((_, dtmf),) = peer.events("dtmf")
    assert dtmf["dtmf"] == {"track": "inbound_track", "digit": "7"}
    assert call.metrics.protocol_errors == []
