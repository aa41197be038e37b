"""Alembic: upgrade, downgrade to base and upgrade again on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import make_settings
from voicebot.cli import alembic_config, migrate


async def _indexes(url: str, table: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(
            lambda sync: {ix["name"] for ix in inspect(sync).get_indexes(table)}
        )
    await engine.dispose()
    return {name for name in names if name}


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


def test_attempt_call_id_index_up_and_down(database_url: str) -> None:
    """0007 adds the index on campaign_attempts.call_id and its downgrade drops it."""
    from alembic import command

    settings = make_settings(database_url=database_url)
    config = alembic_config(settings)
    assert "ix_campaign_attempts_call_id" in asyncio.run(
        _indexes(database_url, "campaign_attempts")
    )
    command.downgrade(config, "0006_console_indexes")  # type: ignore[arg-type]
    assert "ix_campaign_attempts_call_id" not in asyncio.run(
        _indexes(database_url, "campaign_attempts")
    )
    migrate(settings)
    assert "ix_campaign_attempts_call_id" in asyncio.run(
        _indexes(database_url, "campaign_attempts")
    )


def test_a_migrated_sqlite_file_is_left_in_wal_mode(tmp_path: Path) -> None:
    """`voicebot migrate` leaves a SQLite file in WAL mode, so the server's engines never
    switch its journal mode while they connect together."""
    path = tmp_path / "fresh.db"
    migrate(make_settings(database_url=f"sqlite+aiosqlite:///{path}"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
