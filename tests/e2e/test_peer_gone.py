"""A caller whose socket is gone before the receive side saw it close: the send that finds
it gone (PeerGoneError from the media route) ends the call quietly, like ``stop``; it is
never logged as an unexpected fault and no apology or goodbye is attempted on it.

The load run's dropped calls: the marks of a reply never came back, the turn loop
interrupted the reply ("marks_lost"), and its ``clear`` met a closed socket; a media or
mark send meeting one failed the call's task group."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from tests.e2e.conftest import local_call_services, local_session
from voicebot.call import session as session_module
from voicebot.call.session import CallSession
from voicebot.errors import PeerGoneError


class GonePeer:
    """Takes frames and never echoes a mark; the socket is gone after ``gone_after_frames``
    frames, or at the first mark, or at the first ``clear``."""

    def __init__(self, *, gone_after_frames: int | None = None, gone_at_mark: bool = False) -> None:
        self.frames = 0
        self._gone_at_mark = gone_at_mark
        self.marks: list[str] = []
        self.clears = 0
        self.gone = False
        self._gone_after = gone_after_frames

    def _check(self) -> None:
        if self.gone:
            raise PeerGoneError("the websocket is closed (WebSocketDisconnect)")

    async def media(self, payload: bytes) -> None:
        if self._gone_after is not None and self.frames >= self._gone_after:
            self.gone = True
        self._check()
        self.frames += 1

    async def mark(self, name: str) -> None:
        self.gone = self.gone or self._gone_at_mark
        self._check()
        self.marks.append(name)

    async def clear(self) -> None:
        self.gone = True  # the caller's connection was lost while the marks were awaited
        self.clears += 1
        self._check()


async def _run_call(tmp_path: Path, peer: GonePeer) -> tuple[CallSession, list[dict[str, object]]]:
    # This peer sends no media; only its socket goes.
    async with local_call_services(tmp_path, inbound_media_timeout_s=60.0) as services:
        with capture_logs() as logs:  # the session binds its logger when created
            call = await local_session(
                services,
                "CAgone",
                send_media=peer.media,
                send_mark=peer.mark,
                send_clear=peer.clear,
            )
            await asyncio.wait_for(call.run(), timeout=20)
    return call, logs


async def test_mark_send_on_a_gone_socket_ends_the_call_quietly(tmp_path: Path) -> None:
    """The greeting's audio went out, then its mark finds the socket gone: the call ends
    as peer_gone, with no call.unexpected_error and nothing more sent into the socket."""
    peer = GonePeer(gone_at_mark=True)
    call, logs = await _run_call(tmp_path, peer)
    events = [entry["event"] for entry in logs]
    assert peer.frames > 0
    assert call.end_reason == "peer_gone"
    assert "call.unexpected_error" not in events
    assert call.close_code == session_module.WS_CLOSE_NORMAL


async def test_media_send_on_a_gone_socket_ends_the_call_quietly(tmp_path: Path) -> None:
    """The socket goes mid-greeting: the playout's next frame finds it gone and the call
    ends as peer_gone instead of failing the call's task group."""
    peer = GonePeer(gone_after_frames=5)
    call, logs = await _run_call(tmp_path, peer)
    assert call.end_reason == "peer_gone"
    assert "call.unexpected_error" not in [entry["event"] for entry in logs]
    assert peer.frames == 5
