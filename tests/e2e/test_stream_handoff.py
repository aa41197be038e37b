"""The voice webhook hands its call over to the call's stream in the same process: the
greeting starts without waiting for the stream's claim on the call row, and a stream
whose claim is refused ends without storing anything. SQLite and Postgres, a real server."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select, update

from tests.e2e.conftest import answer_call, call_server_settings
from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, CallTurn
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import (
    SimulatedCall,
    open_stream,
)

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "stream-handoff-auth-token"
CALL_SID = "CA" + "d" * 32
LOCK_HELD_S = 1.5


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=12)) as running:
        yield running


@pytest.fixture
async def server(
    database_url: str, tmp_path: Path, sim: ProviderSim
) -> AsyncIterator[tuple[str, Settings]]:
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        database_url=database_url,
    )
    async with running_server(settings, port=port) as base:
        yield base, settings


async def _answer(base: str) -> tuple[str, dict[str, str]]:
    return await answer_call(
        base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=CALL_SID
    )


def _stream(
    base: str, stream_url: str, parameters: dict[str, str]
) -> contextlib.AbstractAsyncContextManager[SimulatedCall]:
    return open_stream(
        base,
        stream_url=stream_url,
        parameters=parameters,
        call_sid=CALL_SID,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
    )


async def _call_row(settings: Settings) -> tuple[Call, int]:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            row = (await db.scalars(select(Call))).one()
            turns = await db.scalar(select(func.count()).select_from(CallTurn))
    finally:
        await engine.dispose()
    return row, int(turns or 0)


@contextlib.contextmanager
def _sqlite_write_lock(url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock (BEGIN IMMEDIATE) for the block."""
    con = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        yield
        con.execute("COMMIT")
    finally:
        con.close()


@contextlib.asynccontextmanager
async def _postgres_row_lock(url: str, call_sid: str) -> AsyncIterator[None]:
    """Another transaction holds the call row (SELECT … FOR UPDATE) for the block."""
    con = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tx = con.transaction()
        await tx.start()
        await con.execute("SELECT 1 FROM calls WHERE call_sid = $1 FOR UPDATE", call_sid)
        yield
        await tx.commit()
    finally:
        await con.close()


@contextlib.asynccontextmanager
async def _claim_blocked(settings: Settings) -> AsyncIterator[None]:
    if settings.database_url.startswith("sqlite"):
        with _sqlite_write_lock(settings.database_url):
            yield
    else:
        async with _postgres_row_lock(settings.database_url, CALL_SID):
            yield


async def test_the_greeting_does_not_wait_for_the_claim(server: tuple[str, Settings]) -> None:
    """While another transaction blocks the stream's claim (SQLite's write lock, a
    Postgres row lock), the handed-over stream greets; the claim lands once it is free."""
    base, settings = server
    stream_url, parameters = await _answer(base)
    async with contextlib.AsyncExitStack() as stack:
        blocked = contextlib.AsyncExitStack()
        await blocked.enter_async_context(_claim_blocked(settings))
        try:
            call = await stack.enter_async_context(_stream(base, stream_url, parameters))
            await call.wait_until(
                lambda: call.ended or call.metrics.first_agent_media_ms is not None,
                LOCK_HELD_S,
            )
            assert not call.ended
            assert call.metrics.first_agent_media_ms is not None
        finally:
            await blocked.aclose()
        # The lock is gone: the claim commits and names this stream.
        for _ in range(50):
            row, _ = await _call_row(settings)
            if row.stream_sid is not None:
                break
            await asyncio.sleep(0.1)
        assert row.stream_sid == call.stream_sid
        assert not call.ended


async def test_a_refused_stream_stores_nothing(
    server: tuple[str, Settings],
) -> None:
    """Another process's stream claimed the call first (its stream_sid is on the row): the
    handed-over stream here may have begun its greeting, but its claim is refused, so it
    is closed with 1008 and stores no turn, outcome or summary; the row is untouched."""
    base, settings = server
    stream_url, parameters = await _answer(base)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            await db.execute(
                update(Call).where(Call.call_sid == CALL_SID).values(stream_sid="MZ" + "e" * 32)
            )
            await db.commit()
    finally:
        await engine.dispose()
    async with _stream(base, stream_url, parameters) as call:
        await call.wait_until(lambda: call.ended, 10)
        assert call.close_code == 1008
    await asyncio.sleep(0.5)  # anything the refused session would store has had its time
    row, turns = await _call_row(settings)
    assert row.stream_sid == "MZ" + "e" * 32
    assert (row.outcome, row.summary, row.ended_at, turns) == (None, None, None, 0)
    assert row.status == "in-progress"
