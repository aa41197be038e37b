"""Shared fixtures: settings, databases (SQLite and real Postgres), the app and an HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from voicebot.app import create_app
from voicebot.cli import migrate
from voicebot.config import Settings, load_settings

POSTGRES_ADMIN_DSN = os.environ.get(
    "VOICEBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("VOICEBOT_TEST_REDIS", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("VOICEBOT_REQUIRE_SERVICES") == "1"
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
"""``gw0``, ``gw1``… under pytest-xdist (``make test`` runs ``pytest -n``); None in a plain run."""


def service_unavailable(what: str, error: Exception) -> None:
    """Skip locally, fail in CI (VOICEBOT_REQUIRE_SERVICES=1), when a real service is down."""
    message = f"{what} unavailable: {error}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "log_format": "json",
        "log_level": "WARNING",
        "redis_url": None,
        "api_key": None,
        "openai_api_key": None,
        "twilio_account_sid": None,
        "twilio_auth_token": None,
        # Tests open connections on demand: eight suites share one Postgres.
        "db_pool_warm": 0,
    }
    base.update(overrides)
    return load_settings(_env_file=None, **base)


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """An empty Postgres database of its own (``postgresql://…`` URL), dropped afterwards;
    skip locally / fail in CI when Postgres is down."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        service_unavailable("Postgres", exc)
    try:
        yield f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh Postgres database for this test session, migrated to head; dropped afterwards."""
    with fresh_postgres_database("voicebot_test") as plain:
        url = plain.replace("postgresql://", "postgresql+asyncpg://")
        migrate(make_settings(database_url=url))
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every DB test runs on SQLite and on the real Postgres."""
    if request.param == "sqlite":
        sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        migrate(make_settings(database_url=sqlite_url))
        return sqlite_url
    postgres: str = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate_postgres(postgres))
    return postgres


async def _truncate_postgres(url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from voicebot.db.models import Base

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _start_redis_server() -> tuple[str, subprocess.Popen[bytes]]:
    """A redis-server of our own on a free loopback port (no persistence); its URL and process."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server binary", FileNotFoundError("redis-server"))
        raise AssertionError("unreachable")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen(  # noqa: S603 - fixed arguments, our own binary
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _port_open("127.0.0.1", port):
        time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc


@pytest.fixture(scope="session")
def _session_redis_url() -> Iterator[str]:
    """The Redis this test process uses: VOICEBOT_TEST_REDIS in a plain run; under xdist each
    worker starts a redis-server of its own for the session, so workers never flush each
    other's keys (and never touch the shared Redis other users' dbs live on)."""
    if XDIST_WORKER is None:
        yield REDIS_TEST_URL
        return
    url, proc = _start_redis_server()
    yield url
    proc.kill()
    proc.wait()


@pytest.fixture
def redis_url(_session_redis_url: str) -> str:
    """URL of a real Redis (see ``_session_redis_url``), flushed; skip locally / fail in CI
    when it is down."""
    import redis

    try:
        conn = redis.Redis.from_url(_session_redis_url, socket_connect_timeout=1)
        conn.flushdb()
        conn.close()
    except redis.RedisError as exc:
        service_unavailable("Redis", exc)
    return _session_redis_url


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port, so the test may kill it."""
    url, proc = _start_redis_server()
    yield url, proc
    proc.kill()
    proc.wait()
