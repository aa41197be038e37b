"""Faults at the moment a Media Stream starts: the call goes on.

The stream's start claims the call row and loads the call's lead and script. When the
database fails right then, the claim is skipped ("the token still proves the call") and
the session must start all the same, without a lead or a campaign script, rather than
dropping the socket with a traceback before the caller hears anything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import answer_call, call_server_settings
from voicebot.config import Settings
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import open_stream

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "stream-start-auth-token"
CALL_SID = "CA" + "b" * 32


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=10)) as running:
        yield running


@pytest.fixture
async def server(tmp_path: Path, sim: ProviderSim) -> AsyncIterator[tuple[str, Settings]]:
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        db_statement_timeout_ms=300,
    )
    async with running_server(settings, port=port) as base:
        yield base, settings


async def _answer(base: str) -> tuple[str, dict[str, str]]:
    return await answer_call(
        base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=CALL_SID
    )


async def test_database_failing_at_stream_start_leaves_the_call_up(
    server: tuple[str, Settings], tmp_path: Path
) -> None:
    """The calls table unreadable between the webhook and the stream's start (the claim
    and the call's load both fail): the caller still hears the greeting."""
    base, _ = server
    stream_url, parameters = await _answer(base)
    db = sqlite3.connect(tmp_path / "calls.db", timeout=15)
    try:
        # Not renamed back: the server's turn writer retries into the missing table
        # (holding SQLite's write lock) until the server stops; the database is scratch.
        db.execute("ALTER TABLE calls RENAME TO calls_away")
        db.commit()
    finally:
        db.close()
    async with open_stream(
        base,
        stream_url=stream_url,
        parameters=parameters,
        call_sid=CALL_SID,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
    ) as call:
        await call.wait_until(lambda: call.metrics.agent_audio_ms > 500 or call.ended, 15)
        assert not call.ended, f"the call dropped (close code {call.close_code})"
        assert call.metrics.agent_audio_ms > 500
