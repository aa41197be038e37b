"""Frames the load generator sends: Twilio-exact `media` messages clocked by one shared ticker."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from voicebot.audio.codec import FRAME_BYTES_ULAW, ULAW_SILENCE_BYTE, ULAW_SILENT_FRAME
from voicebot.telephony import twiml
from voicebot.telephony.events import Connected, Media, Start, Stop, parse_event
from voicebot.testing.twilio_api_sim import serve_on_loopback
from voicebot.testing.twilio_caller import FrameTicker, encode_speech, place_call

ACCOUNT = "AC" + "d" * 32
TOKEN = "frames-token"
SPEECH = bytes(range(0, 250)) * 2  # 500 bytes: three full frames and one padded
CALLS = 3
RUN_S = 0.6


def test_encode_speech_cuts_160_byte_frames_and_pads_the_last_with_silence() -> None:
    """Speech becomes base64 frames of exactly 160 μ-law bytes; the tail is silence-padded."""
    import binascii

    speech = encode_speech(SPEECH)
    frames = [binascii.a2b_base64(f) for f in speech.frames_b64]
    assert len(frames) == 4 and speech.duration_ms == 80
    assert all(len(f) == FRAME_BYTES_ULAW for f in frames)
    assert b"".join(frames)[: len(SPEECH)] == SPEECH
    assert frames[-1][len(SPEECH) % FRAME_BYTES_ULAW :] == bytes([ULAW_SILENCE_BYTE]) * 140


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, dict[str, list[str]]]]:
    """A loopback server answering TwiML and recording every websocket message by stream."""
    received: dict[str, list[str]] = {}

    async def voice(_: Request) -> Response:
        return Response(
            twiml.connect_stream(ws_base[0] + "/twilio/media", {}), media_type="text/xml"
        )

    async def media(ws: WebSocket) -> None:
        await ws.accept()
        messages: list[str] = []
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await ws.receive_text()
                messages.append(text)
                event = parse_event(text)
                if isinstance(event, Start):
                    received[event.stream_sid] = messages

    ws_base: list[str] = []
    app = Starlette(
        routes=[
            Route("/twilio/voice", voice, methods=["POST"]),
            WebSocketRoute("/twilio/media", media),
        ]
    )
    async with serve_on_loopback(app) as base_url:
        ws_base.append(base_url.replace("http://", "ws://"))
        yield base_url, received


async def test_shared_ticker_sends_faithful_media_frames_for_every_call(
    recorder: tuple[str, dict[str, list[str]]],
) -> None:
    """Each call's media parses server-side, carries 160 bytes, and counts up by 1 and 20 ms."""
    base_url, received = recorder
    ticker = FrameTicker()
    speech = encode_speech(SPEECH)
    async with asyncio.TaskGroup() as group:
        clock = group.create_task(ticker.run())
        async with contextlib.AsyncExitStack() as stack:
            calls = [
                await stack.enter_async_context(
                    place_call(base_url, account_sid=ACCOUNT, auth_token=TOKEN, ticker=ticker)
                )
                for _ in range(CALLS)
            ]
            await asyncio.sleep(0.05)
            assert len(ticker) == CALLS
            calls[0].say(speech)
            await asyncio.sleep(RUN_S)
        await asyncio.sleep(0.1)
        assert len(ticker) == 0  # hung-up calls leave the ticker
        clock.cancel()
    assert len(received) == CALLS
    for index, call in enumerate(calls):
        events = [parse_event(m) for m in received[call.stream_sid]]
        assert isinstance(events[0], Connected) and isinstance(events[1], Start)
        assert isinstance(events[-1], Stop)
        media = [e for e in events if isinstance(e, Media)]
        assert len(media) >= RUN_S / 0.02 * 0.7
        assert all(len(m.payload) == FRAME_BYTES_ULAW for m in media)
        assert all(m.track == "inbound" and m.stream_sid == call.stream_sid for m in media)
        raw = [json.loads(m) for m in received[call.stream_sid]]
        sequence = [int(m["sequenceNumber"]) for m in raw if m["event"] == "media"]
        assert all(isinstance(m["sequenceNumber"], str) for m in raw if "sequenceNumber" in m)
        assert sequence == list(range(2, 2 + len(media)))  # `start` is 1
        assert [m.chunk for m in media] == list(range(1, len(media) + 1))
        assert [m.timestamp_ms for m in media] == [20 * c for c in range(1, len(media) + 1)]
        audio = b"".join(m.payload for m in media)
        if index == 0:
            assert SPEECH in audio
            assert audio.replace(ULAW_SILENT_FRAME, b"")[: len(SPEECH)] == SPEECH
        else:
            assert set(audio) == {ULAW_SILENCE_BYTE}
    assert ticker.ticks >= RUN_S / 0.02 * 0.7
    assert len(ticker.lags_ms) > 0
