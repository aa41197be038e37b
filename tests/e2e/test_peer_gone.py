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

from tests.conftest import make_settings
from voicebot.brain.base import ConversationState
from voicebot.call import session as session_module
from voicebot.call.session import CallSession
from voicebot.call.wiring import build_call_services
from voicebot.cli import migrate
from voicebot.db.engine import (
    create_autocommit_engine,
    create_engine,
    create_sessionmaker,
    dispose_engines,
)
from voicebot.db.models import Call, CallStatus
from voicebot.errors import PeerGoneError
from voicebot.metrics import Metrics
from voicebot.providers.factory import build_providers
from voicebot.store.resilient import ResilientStore


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
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone.db'}"
    migrate(make_settings(database_url=url))
    settings = make_settings(
        database_url=url,
        tts_cache_dir=str(tmp_path / "tts"),
        inbound_media_timeout_s=60.0,  # this peer sends no media; only its socket goes
    )
    engine = create_engine(settings)
    autocommit = create_autocommit_engine(settings, engine)
    providers = build_providers(settings)
    services = build_call_services(
        settings,
        metrics=Metrics(),
        sessions=create_sessionmaker(engine),
        autocommit=create_sessionmaker(autocommit),
        store=ResilientStore(None),
        providers=providers,
    )
    try:
        async with services.sessions() as db:
            row = Call(call_sid="CAgone", direction="inbound", status=CallStatus.IN_PROGRESS)
            db.add(row)
            await db.commit()
        with capture_logs() as logs:  # the session binds its logger when created
            call = CallSession(
                services=services,
                call_id=row.id,
                call_sid="CAgone",
                state=ConversationState(),
                send_media=peer.media,
                send_mark=peer.mark,
                send_clear=peer.clear,
            )
            await asyncio.wait_for(call.run(), timeout=20)
    finally:
        await providers.aclose()
        await dispose_engines(engine, autocommit)
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
