"""The simulator's Realtime transcription socket on the wire (a plain websockets client):
the events a real client sees, and the refusals of what it does not accept."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import websockets.asyncio.client
import websockets.exceptions

from voicebot.testing.provider_sim import ProviderSim

SESSION = {
    "type": "transcription",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "transcription": {"model": "gpt-4o-mini-transcribe", "language": "he"},
            "turn_detection": None,
        }
    },
}


def _url(sim: ProviderSim, query: str = "intent=transcription") -> str:
    return sim.base_url.replace("http://", "ws://") + f"/realtime?{query}"


async def _next(ws: websockets.asyncio.client.ClientConnection) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await ws.recv())
    return event


async def _open(sim: ProviderSim) -> websockets.asyncio.client.ClientConnection:
    headers = {"Authorization": "Bearer sim-key"}
    ws = await websockets.asyncio.client.connect(_url(sim), additional_headers=headers)
    assert (await _next(ws))["type"] == "session.created"
    return ws


async def test_session_update_then_append_commit_gives_committed_added_completed(
    sim: ProviderSim,
) -> None:
    """The happy path's event sequence, with the committed item's id on every event."""
    sim.config.default_transcript = "לא ברור"
    async with await _open(sim) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": SESSION}))
        updated = await _next(ws)
        assert updated["type"] == "session.updated"
        assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        audio = base64.b64encode(b"\x7f\x00\xff\x80" * 400).decode()  # 200 ms of μ-law
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        kinds = []
        item_ids = set()
        while not kinds or kinds[-1] != "conversation.item.input_audio_transcription.completed":
            event = await _next(ws)
            kinds.append(event["type"])
            item_ids.add(event.get("item_id") or event.get("item", {}).get("id"))
            assert event["event_id"]
        assert kinds[:2] == ["input_audio_buffer.committed", "conversation.item.added"]
        assert len(item_ids) == 1
        assert event["transcript"] == "לא ברור"
        assert event["usage"] == {"type": "duration", "seconds": 0.2}


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({**SESSION, "type": "realtime"}, "session.type"),
        (
            {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            "session.audio.input.turn_detection",  # server VAD left on (the default)
        ),
        (
            {
                "type": "transcription",
                "audio": {"input": {"format": {"type": "audio/ogg"}, "turn_detection": None}},
            },
            "session.audio.input.format",
        ),
    ],
)
async def test_a_session_update_the_simulator_cannot_honour_is_an_error_naming_it(
    sim: ProviderSim, session: dict[str, Any], param: str
) -> None:
    """A refused session.update answers `error` with the param and the client's event id."""
    async with await _open(sim) as ws:
        update = {"type": "session.update", "event_id": "evt_1", "session": session}
        await ws.send(json.dumps(update))
        error = await _next(ws)
    assert error["type"] == "error"
    assert error["error"]["param"] == param
    assert error["error"]["event_id"] == "evt_1"


async def test_bad_audio_and_unknown_events_are_errors_and_the_socket_stays_open(
    sim: ProviderSim,
) -> None:
    """Non-base64 audio and an unknown event type each get an `error`; clear still works."""
    async with await _open(sim) as ws:
        await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}))
        assert (await _next(ws))["error"]["param"] == "audio"
        await ws.send(json.dumps({"type": "response.create"}))
        assert (await _next(ws))["error"]["code"] == "invalid_value"
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await _next(ws))["type"] == "input_audio_buffer.cleared"


async def test_the_handshake_needs_the_key_and_the_transcription_intent(
    sim: ProviderSim,
) -> None:
    """A wrong key is HTTP 401 and a conversation URL (no intent) HTTP 400, as refusals."""
    sim.config.api_key = "right"
    with pytest.raises(websockets.exceptions.InvalidStatus) as wrong_key:
        await websockets.asyncio.client.connect(
            _url(sim), additional_headers={"Authorization": "Bearer wrong"}
        )
    assert wrong_key.value.response.status_code == 401
    with pytest.raises(websockets.exceptions.InvalidStatus) as no_intent:
        await websockets.asyncio.client.connect(
            _url(sim, "model=gpt-realtime"), additional_headers={"Authorization": "Bearer right"}
        )
    assert no_intent.value.response.status_code == 400
