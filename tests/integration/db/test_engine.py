"""The Postgres engine's pool without pre-ping: a pooled connection the server closed is
replaced at checkout, so the next request after a Postgres restart does not fail."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from tests.conftest import POSTGRES_ADMIN_DSN, make_settings
from voicebot.db.engine import create_engine

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
