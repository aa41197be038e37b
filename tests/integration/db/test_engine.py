"""The Postgres engine's pool without pre-ping: a pooled connection the server closed is
replaced at checkout, so the next request after a Postgres restart does not fail; the
pool warmed at start-up, best effort."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest
from sqlalchemy import text

from tests.conftest import POSTGRES_ADMIN_DSN, make_settings
from voicebot.db.engine import create_engine, warm_pool

pytestmark = pytest.mark.integration

CLOSE_NOTICED_WAIT_S = 0.2
"""Time for the event loop to read the server's close on the idle pooled socket."""


async def test_connection_closed_by_the_server_is_replaced_at_checkout(
    postgres_url: str,
) -> None:
    """pg_terminate_backend on the only pooled connection: the next checkout opens a new
    backend and the statement succeeds (no pre-ping round trip needed)."""
    engine = create_engine(make_settings(database_url=postgres_url, db_pool_size=1))
    try:
        async with engine.connect() as conn:
            old_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        finally:
            await admin.close()
        await asyncio.sleep(CLOSE_NOTICED_WAIT_S)
        async with engine.connect() as conn:
            new_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert new_pid != old_pid
    finally:
        await engine.dispose()


async def test_warm_pool_opens_connections_that_later_checkouts_reuse(postgres_url: str) -> None:
    """Three warmed connections are pooled (capped at the pool's size), and three
    concurrent checkouts afterwards use exactly those backends: none is opened on demand."""
    engine = create_engine(make_settings(database_url=postgres_url, db_pool_size=3))
    try:
        assert await warm_pool(engine, 5) == 3
        pids: set[int] = set()
        release = asyncio.Event()
        all_in = asyncio.Event()

        async def use_one() -> None:
            async with engine.connect() as conn:
                pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
                if len(pids) == 3:
                    all_in.set()
                await release.wait()

        users = [asyncio.create_task(use_one()) for _ in range(3)]
        async with asyncio.timeout(5):
            await all_in.wait()
        assert engine.pool.checkedout() == 3  # type: ignore[attr-defined]
        assert engine.pool.overflow() == 0  # type: ignore[attr-defined]
        release.set()
        await asyncio.gather(*users)
        assert engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_warm_pool_with_postgres_unreachable_returns_zero() -> None:
    """Nothing listens on the port: no exception (the app starts and connects on demand),
    nothing pooled."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/voicebot"
    engine = create_engine(make_settings(database_url=url, db_pool_size=2))
    try:
        assert await warm_pool(engine, 2) == 0
    finally:
        await engine.dispose()


async def test_warm_pool_zero_or_sqlite_opens_nothing(postgres_url: str) -> None:
    engine = create_engine(make_settings(database_url=postgres_url, db_pool_size=2))
    try:
        assert await warm_pool(engine, 0) == 0
        assert engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    lite = create_engine(make_settings(database_url="sqlite+aiosqlite:///:memory:"))
    try:
        assert await warm_pool(lite, 5) == 0
    finally:
        await lite.dispose()
