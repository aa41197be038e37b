"""The voice webhook on SQLite while another writer holds the database lock past the busy
timeout (100 calls at once did, in the load run): it retries in a fresh transaction and
connects the call, and when the lock outlasts its bound it answers 503 with Retry-After,
never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from voicebot.app import create_app
from voicebot.cli import migrate
from voicebot.config import Settings

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "locked-auth-token"
BUSY_TIMEOUT_MS = 200  # the engine's busy timeout is the statement timeout


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "locked.db"
    migrate(make_settings(database_url=f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def settings(db_path: Path, tmp_path: Path) -> Settings:
    return make_settings(
        database_url=f"sqlite+aiosqlite:///{db_path}",
        db_statement_timeout_ms=BUSY_TIMEOUT_MS,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        tts_cache_dir=str(tmp_path / "tts"),
    )


@pytest.fixture
async def twilio(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


class WriteLock:
    """Another writer: holds SQLite's write lock (BEGIN IMMEDIATE) until released."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("BEGIN IMMEDIATE")
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            self._conn.rollback()
            self._conn.close()


@pytest.fixture
def write_lock(db_path: Path) -> Iterator[WriteLock]:
    lock = WriteLock(db_path)
    yield lock
    with contextlib.suppress(sqlite3.ProgrammingError):  # released by the test
        lock.release()


async def _voice(http: httpx.AsyncClient, settings: Settings, sid: str) -> httpx.Response:
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": sid,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "From": "+97233769999",
        "To": "+972544567890",
    }
    url = settings.public_base_url + "/twilio/voice"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    return await http.post("/twilio/voice", data=form, headers={"X-Twilio-Signature": signature})


async def test_lock_held_past_the_busy_timeout_is_waited_out(
    twilio: httpx.AsyncClient, settings: Settings, write_lock: WriteLock
) -> None:
    """A writer holding the lock for 2.5 busy timeouts: the webhook retries in a fresh
    transaction and connects the stream (it answered 500 'database is locked')."""
    loop = asyncio.get_running_loop()
    loop.call_later(BUSY_TIMEOUT_MS * 2.5 / 1000, write_lock.release)
    response = await _voice(twilio, settings, "CA" + "a1" * 16)
    assert response.status_code == 200, response.text
    assert "<Stream" in response.text or "<Gather" in response.text


async def test_lock_held_past_the_bound_is_a_503_with_retry_after(
    twilio: httpx.AsyncClient, settings: Settings, write_lock: WriteLock
) -> None:
    """A writer that never lets go: 503 in the one error shape with Retry-After, never 500."""
    response = await _voice(twilio, settings, "CA" + "b2" * 16)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"]["code"] == "unavailable"
