"""A slot read that its reply abandons (a barge-in, a discarded speculative reply) runs to
its end instead of being cancelled in flight: its pooled connection is not invalidated,
and on asyncpg no cancel request leaves a future nobody retrieves."""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import capture_logs

from tests.conftest import make_settings
from voicebot.db import booking_tools
from voicebot.db import engine as engine_module
from voicebot.db.booking_tools import DbBookingTools
from voicebot.db.engine import create_engine, create_sessionmaker, uncancelled

QUERY_S = 0.3


async def test_an_abandoned_slot_read_finishes_and_keeps_its_connection(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(database_url=database_url)
    engine = create_engine(settings)
    postgres = engine.dialect.name == "postgresql"
    real_busy = booking_tools.booking.busy_intervals
    finished: list[bool] = []

    async def slow_busy(session: AsyncSession, start: datetime, end: datetime) -> Any:
        if postgres:
            await session.execute(text(f"SELECT pg_sleep({QUERY_S})"))
        else:
            await asyncio.sleep(QUERY_S)
        result = await real_busy(session, start, end)
        finished.append(True)
        return result

    monkeypatch.setattr(booking_tools.booking, "busy_intervals", slow_busy)
    invalidated: list[object] = []
    event.listen(engine.sync_engine, "invalidate", lambda *args: invalidated.append(args))
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    tools = DbBookingTools(settings=settings, sessions=create_sessionmaker(engine), lead_id=None)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo("Asia/Jerusalem"))
    try:
        for _ in range(3):
            reply = asyncio.create_task(tools.available_slots(day=None, now=now, limit=3))
            await asyncio.sleep(QUERY_S / 3)  # the read is in the database
            reply.cancel()  # the caller talked over the agent
            with pytest.raises(asyncio.CancelledError):
                await reply
        await asyncio.sleep(QUERY_S * 2)
        gc.collect()  # "never retrieved" is reported when a future is collected
    finally:
        loop.set_exception_handler(None)
        await engine.dispose()
    assert finished == [True] * 3
    assert invalidated == []
    assert unhandled == []
    assert not engine_module._UNCANCELLED


async def test_uncancelled_returns_raises_and_logs_an_abandoned_failure() -> None:
    """The result and the error reach a caller that waits; an abandoned unit of work that
    fails is logged once (not left for asyncio to report as never retrieved)."""

    async def value() -> int:
        await asyncio.sleep(0)
        return 7

    async def failing(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        raise ConnectionResetError("the database went away")

    assert await uncancelled(value()) == 7
    with pytest.raises(ConnectionResetError):
        await uncancelled(failing(0))
    with capture_logs() as logs:
        waiting = asyncio.create_task(uncancelled(failing(0.05)))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.sleep(0.1)
    assert [e["event"] for e in logs] == ["db.abandoned_work_failed"]
    assert logs[0]["error"] == "ConnectionResetError"
    assert not engine_module._UNCANCELLED
