"""Engine and session factory, created by the app lifespan and disposed at shutdown."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from voicebot.config import Settings

DB_PING_TIMEOUT_S = 2.0
SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """An async engine: Postgres pool 10 + 20 overflow with pre-ping, or SQLite with WAL."""
    db_url = url or settings.database_url
    if db_url.startswith("postgresql"):
        return create_async_engine(
            db_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={"timeout": DB_PING_TIMEOUT_S * 2},
        )
    engine = create_async_engine(db_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1``; raises on failure (callers bound it with a timeout)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def engine_kind(engine: AsyncEngine) -> str:
    name: Any = engine.dialect.name
    return "postgres" if name == "postgresql" else str(name)
