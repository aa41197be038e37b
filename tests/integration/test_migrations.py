"""Alembic: upgrade, downgrade to base and upgrade again on both databases."""

from __future__ import annotations

import asyncio

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import make_settings
from voicebot.cli import alembic_config, migrate


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    return names


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    """The schema goes to base and back to head cleanly."""
    from alembic import command

    settings = make_settings(database_url=database_url)
    assert "meetings" in asyncio.run(_tables(database_url))
    command.downgrade(alembic_config(settings), "base")  # type: ignore[arg-type]
    assert asyncio.run(_tables(database_url)) <= {"alembic_version"}
    migrate(settings)
    assert {"leads", "meetings", "calls", "call_turns", "campaigns", "do_not_call"} <= asyncio.run(
        _tables(database_url)
    )
