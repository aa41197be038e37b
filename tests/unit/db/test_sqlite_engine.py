"""The embedded SQLite engine: WAL journal, foreign keys, and commits without an fsync
(synchronous=NORMAL), so no write holds the one write lock through a disk flush."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from tests.conftest import make_settings
from voicebot.db.engine import create_engine

SQLITE_SYNCHRONOUS_NORMAL = 1
"""What ``PRAGMA synchronous`` reads back for NORMAL (FULL, SQLite's default, is 2)."""


async def test_every_sqlite_connection_is_wal_with_normal_synchronous(tmp_path: Path) -> None:
    """Each pooled connection the engine opens reads back WAL, NORMAL and foreign keys on."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'voicebot.db'}"
    engine = create_engine(make_settings(database_url=url))
    try:
        async with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
                synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
                assert synchronous == SQLITE_SYNCHRONOUS_NORMAL
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await engine.dispose()
