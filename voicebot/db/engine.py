"""Engine and session factory, created by the app lifespan and disposed at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog
from sqlalchemy import URL, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from voicebot.config import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")
_UNCANCELLED: set[asyncio.Task[Any]] = set()  # running on after their caller was cancelled

DB_PING_TIMEOUT_S = 2.0
# The client's own bound on a Postgres statement exceeds the server's by this much.
CLIENT_TIMEOUT_MARGIN_S = 1.0
# SQLite in WAL mode: a commit is durable across a crash of the process, not of the
# machine (power loss may roll back the last commits), and costs no fsync (~1.4 ms p50,
# ~6 ms p99 on the bench machine, paid while holding the one write lock every call's
# stream claim and turn writes wait on). FULL would fsync every commit.
SQLITE_SYNCHRONOUS = "NORMAL"


def create_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """An async engine: Postgres pool 10 + 20 overflow, or SQLite with WAL.

    A pooled Postgres connection is checked at checkout without a round trip: one whose
    socket the server closed (a restart, ``pg_terminate_backend``, an idle timeout) is
    discarded and replaced (:func:`_discard_closed`). A connection that dies unseen fails
    its statement; SQLAlchemy then invalidates the whole pool, so each process sees that
    once. ``pool_pre_ping`` would instead cost three round trips per checkout (BEGIN,
    ``;``, ROLLBACK: a third of a status callback's database time).

    Every statement is bounded by ``db_statement_timeout_ms``: Postgres cancels it server
    side (``statement_timeout``) and the client gives up a second later (a stalled network
    answers nothing); SQLite waits at most that long for a lock (busy timeout). A call
    never waits on the database longer than that. Migrations use their own engine.
    """
    db_url = url or settings.database_url
    statement_timeout_ms = settings.db_statement_timeout_ms
    if db_url.startswith("postgresql"):
        pg_engine = create_async_engine(
            db_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_recycle=1800,
            pool_timeout=statement_timeout_ms / 1000,
            connect_args={
                "timeout": DB_PING_TIMEOUT_S * 2,
                "command_timeout": statement_timeout_ms / 1000 + CLIENT_TIMEOUT_MARGIN_S,
                "server_settings": {"statement_timeout": str(statement_timeout_ms)},
            },
        )
        event.listen(pg_engine.sync_engine.pool, "checkout", _discard_closed)
        return pg_engine
    return _sqlite_engine(db_url, busy_timeout_ms=statement_timeout_ms)


def create_autocommit_engine(settings: Settings, engine: AsyncEngine) -> AsyncEngine:
    """Where one-statement writes go (a stream's claim, a batch of turns): each statement
    commits on its own, so on SQLite the one write lock is held for the statement alone,
    never while the event loop gets round to a COMMIT.

    On SQLite a second engine on ``engine``'s file, its connections in autocommit from the
    moment they open: switching a pooled connection to autocommit and back costs five more
    trips to the driver's thread (a claim took ten, here four), each waiting for a busy
    loop, and the greeting waits for the claim. Dispose it apart (:func:`dispose_engines`).
    On Postgres ``engine`` itself with autocommit per checkout: asyncpg switches on the
    client side, with no round trip.
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return _sqlite_engine(
        engine.url,
        busy_timeout_ms=settings.db_statement_timeout_ms,
        isolation_level="AUTOCOMMIT",
        # Nothing to roll back: the driver opens no transaction in autocommit.
        pool_reset_on_return=None,
    )


async def uncancelled(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` (one short unit of database work: open a session, query, close);
    if the caller is cancelled meanwhile, the caller stops waiting at once and ``work``
    runs to its end in the background, its result or error dropped.

    For reads a reply makes and may abandon (a barge-in, a speculative reply discarded):
    a query cancelled in flight costs its pooled connection (SQLAlchemy invalidates it),
    and on asyncpg the cancel request it sends leaves a future nobody retrieves, which
    asyncio logs as an error ("Future exception was never retrieved ... unexpected
    connection_lost() call", MagicStack/asyncpg#1310). Raises what ``work`` raises."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            _UNCANCELLED.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(_forget)
        raise


def _forget(task: asyncio.Task[Any]) -> None:
    _UNCANCELLED.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("db.abandoned_work_failed", error=type(task.exception()).__name__)


async def dispose_engines(*engines: AsyncEngine) -> None:
    """Dispose each distinct pool once (the Postgres autocommit engine shares its pool)."""
    seen: list[object] = []
    for engine in engines:
        if not any(engine.pool is pool for pool in seen):
            seen.append(engine.pool)
            await engine.dispose()


def _sqlite_engine(url: str | URL, *, busy_timeout_ms: int, **options: Any) -> AsyncEngine:
    """SQLite in WAL mode, foreign keys on, waiting up to ``busy_timeout_ms`` for a lock."""
    engine = create_async_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SQLITE_SYNCHRONOUS}")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    return engine


def _discard_closed(
    _dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    """Pool checkout hook: refuse a connection whose socket is already closed, so the pool
    opens a fresh one (asyncpg notices the server's close on the event loop, no I/O here)."""
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("connection closed by the server")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1``; raises on failure (callers bound it with a timeout)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def engine_kind(engine: AsyncEngine) -> str:
    name: Any = engine.dialect.name
    return "postgres" if name == "postgresql" else str(name)


async def warm_pool(engine: AsyncEngine, connections: int) -> int:
    """Open ``connections`` pooled Postgres connections (capped at the pool's size) and
    check them back in, so the first requests after start-up do not pay for connecting
    (TCP, authentication, session settings, the dialect's first-connect queries): at 200
    status callbacks/s a cold pool opened 16 connections mid-run (10 + overflow) and
    the first second's p99 was 135-435 ms against 11-50 ms after it (BENCHMARKS.md).
    Returns how many are pooled now; SQLite or ``connections`` 0: 0.

    Best effort, bounded by ``DB_PING_TIMEOUT_S`` × 2: a Postgres that is down or slow is
    logged once (``db.pool_warm_failed``) and the app starts anyway, connecting on demand.
    """
    if engine.dialect.name != "postgresql" or connections <= 0:
        return 0
    wanted = min(connections, engine.pool.size())  # type: ignore[attr-defined]
    opened: list[Any] = []

    async def open_one() -> None:
        opened.append(await engine.connect())

    try:
        async with asyncio.timeout(DB_PING_TIMEOUT_S * 2):
            await open_one()  # the first connect initialises the dialect, once
            # Every connect ends (opened or failed) before the finally closes them.
            failed = [
                exc
                for exc in await asyncio.gather(
                    *(open_one() for _ in range(wanted - 1)), return_exceptions=True
                )
                if exc is not None
            ]
        if failed:
            raise failed[0]
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        log.warning("db.pool_warm_failed", error=repr(exc), opened=len(opened), wanted=wanted)
    finally:
        for conn in opened:
            with contextlib.suppress(Exception):
                await conn.close()
    return int(engine.pool.checkedin())  # type: ignore[attr-defined]
