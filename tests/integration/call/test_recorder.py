"""The recorder writes turns off the speaking path, in order, and keeps retrying through a
database that is locked or stalled (SQLite lock, Postgres table lock + statement timeout)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import make_settings
from voicebot.brain.base import Reply
from voicebot.call.recorder import CallRecorder, TurnTimings
from voicebot.call.services import CallServices
from voicebot.db.engine import (
    create_autocommit_engine,
    create_engine,
    create_sessionmaker,
    dispose_engines,
)
from voicebot.db.models import Call, CallStatus, CallTurn
from voicebot.metrics import Metrics

STATEMENT_TIMEOUT_MS = 300


@asynccontextmanager
async def _turns_locked(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold a lock that blocks every insert into call_turns until the block exits."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            await conn.execute(text("BEGIN"))
            await conn.execute(text("LOCK TABLE call_turns IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await conn.rollback()


def _reply(text_: str) -> Reply:
    return Reply(text=text_, intent="pitch", actions=(), end_call=False, transfer=False)


async def test_turns_queue_while_the_database_is_locked_and_land_in_order(
    database_url: str,
) -> None:
    """flush() returns at once while call_turns is locked; once the lock goes every turn is
    stored, in order, with nothing lost or doubled."""
    settings = make_settings(
        database_url=database_url, db_statement_timeout_ms=STATEMENT_TIMEOUT_MS
    )
    engine = create_engine(settings)
    locker = create_engine(settings)
    autocommit = create_autocommit_engine(settings, engine)
    sessions = create_sessionmaker(engine)
    services: Any = SimpleNamespace(
        settings=settings,
        sessions=sessions,
        autocommit=create_sessionmaker(autocommit),
        metrics=Metrics(),
    )
    try:
        async with sessions() as db:
            call = Call(call_sid="CArec1", direction="inbound", status=CallStatus.IN_PROGRESS)
            db.add(call)
            await db.commit()
            call_id = call.id
        recorder = CallRecorder(cast(CallServices, services), call_id=call_id, call_sid="CArec1")
        async with _turns_locked(locker):
            worst_flush_s = 0.0
            for n in range(4):
                recorder.user_turn(f"שאלה {n}")
                recorder.agent_turn(
                    _reply(f"תשובה {n}"),
                    TurnTimings(started_at=time.monotonic()),
                    interrupted=False,
                )
                started = time.monotonic()
                await recorder.flush()
                worst_flush_s = max(worst_flush_s, time.monotonic() - started)
                await asyncio.sleep(0.1)
            await asyncio.sleep(STATEMENT_TIMEOUT_MS / 1000 * 2)
            assert recorder.written == 0
            assert recorder.write_failures >= 1
        assert worst_flush_s < 0.05
        assert await recorder.drain(10)
        async with sessions() as db:
            rows = (await db.scalars(select(CallTurn).where(CallTurn.call_id == call_id))).all()
        stored = sorted(rows, key=lambda t: t.id)
        assert [t.seq for t in stored] == list(range(1, 9))
        assert [t.text for t in stored] == [
            text_ for n in range(4) for text_ in (f"שאלה {n}", f"תשובה {n}")
        ]
        assert recorder.written == 8
    finally:
        await dispose_engines(engine, autocommit)
        await locker.dispose()
