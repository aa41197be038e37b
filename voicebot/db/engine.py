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
# The client's own bound on a Postgres statement exceeds the server's by this much.
CLIENT_TIMEOUT_MARGIN_S = 1.0


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """An async engine: Postgres pool 10 + 20 overflow with pre-ping, or SQLite with WAL.

    Every statement is bounded by ``db_statement_timeout_ms``: Postgres cancels it server
    side (``statement_timeout``) and the client gives up a second later (a stalled network
    answers nothing); SQLite waits at most that long for a lock (busy timeout). A call
    never waits on the database longer than that. Migrations use their own engine.
    """
    db_url = url or settings.database_url
    statement_timeout_ms = settings.db_statement_timeout_ms
    if db_url.startswith("postgresql"):
        return create_async_engine(
            db_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_timeout=statement_timeout_ms / 1000,
            connect_args={
                "timeout": DB_PING_TIMEOUT_S * 2,
                "command_timeout": statement_timeout_ms / 1000 + CLIENT_TIMEOUT_MARGIN_S,
                "server_settings": {"statement_timeout": str(statement_timeout_ms)},
            },
        )
    busy_timeout_ms = statement_timeout_ms
    engine = create_async_engine(db_url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
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
