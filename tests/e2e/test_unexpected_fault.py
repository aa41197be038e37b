"""An exception nobody expected (a bug in a brain) never cuts the line: it is logged once
with the call SID and a traceback, and the caller hears an apology and a goodbye before
the call ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from structlog.testing import capture_logs

from tests.e2e.conftest import local_call_services, local_session
from voicebot.brain.base import ConversationState, Reply, ReplyEvent
from voicebot.call.session import CallSession
from voicebot.call.speaker import ERROR_GOODBYE_TEXT
from voicebot.db.models import CallTurn


class BuggyBrain:
    """Greets, then fails on every key with an error no stage expects."""

    async def greet(self, state: ConversationState) -> Reply:
        return Reply("שלום.", "greeting", (), end_call=False, transfer=False)

    async def on_dtmf(self, state: ConversationState, digit: str, *, now: datetime) -> Reply:
        raise KeyError("a bug")

    async def respond(self, *_: Any, **__: Any) -> Reply:
        raise KeyError("a bug")

    def respond_stream(self, *_: Any, **__: Any) -> AsyncGenerator[ReplyEvent, None]:
        raise KeyError("a bug")

    async def on_silence(self, state: ConversationState, *, count: int, now: datetime) -> Reply:
        return Reply("", "silence", (), end_call=False, transfer=False)


class Peer:
    """Twilio's side, reduced: takes frames, echoes marks at once."""

    def __init__(self) -> None:
        self.frames = 0
        self.session: CallSession | None = None

    async def media(self, payload: bytes) -> None:
        self.frames += 1

    async def mark(self, name: str) -> None:
        assert self.session is not None
        self.session.on_mark(name)  # played at once

    async def clear(self) -> None:
        return None


async def test_unexpected_exception_is_logged_once_and_the_caller_hears_a_goodbye(
    tmp_path: Path,
) -> None:
    """A key reaching a buggy brain: one `call.unexpected_error` with the SID and a
    traceback, then the stored goodbye turn and the end of the call (no cut line)."""
    peer = Peer()
    async with local_call_services(tmp_path, inbound_media_timeout_s=60.0) as services:
        services.brain_factory = lambda tools, *, script=None: BuggyBrain()  # type: ignore[assignment,misc,return-value]
        session = await local_session(
            services, "CAbuggy", send_media=peer.media, send_mark=peer.mark, send_clear=peer.clear
        )
        peer.session = session
        with capture_logs() as logs:
            async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
                runner = tg.create_task(session.run())
                for _ in range(100):
                    if session.current is not None:
                        break
                    await asyncio.sleep(0.05)
                assert session.current is not None
                assert await session.current.wait_played(10)
                frames_after_greeting = peer.frames
                await session.on_dtmf("5")
                await runner
        async with services.sessions() as db:
            turns = (await db.scalars(select(CallTurn).order_by(CallTurn.seq))).all()
    errors = [e for e in logs if e["event"] == "call.unexpected_error"]
    assert len(errors) == 1
    assert errors[0]["call_sid"] == "CAbuggy"
    assert errors[0].get("exc_info") is True
    assert peer.frames > frames_after_greeting  # the goodbye was played
    assert [t.text for t in turns if t.role == "assistant"][-1] == ERROR_GOODBYE_TEXT
    assert session.end_reason == "internal_error"
