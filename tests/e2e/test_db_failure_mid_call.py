"""The database failing in the middle of a live call: the model's tool query fails, the
failure is logged once with the call's context (call SID, call id), and the caller still
hears an answer; the call goes on."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from tests.e2e.conftest import call_server, hebrew_speech
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.provider_sim import (
    ProviderSim,
    Rule,
    ScriptedResponder,
    SimConfig,
    SimToolCall,
)
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "6" * 32
AUTH_TOKEN = "db-failure-auth-token"
QUESTION = "אילו מועדים פנויים יש לכם השבוע?"
AFTER_FAILURE = "סליחה, יש לנו תקלה במערכת. אבדוק ואחזור אליך."


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=3)) as running:
        running.register_phrase(QUESTION, hebrew_speech(QUESTION), 8000)
        running.responder = ScriptedResponder(
            [Rule(pattern=QUESTION[:6], tool=SimToolCall("propose_slots"))],
            after_tool_text=AFTER_FAILURE,
        )
        yield running


def _drop_meetings(database: Path) -> None:
    """The meetings table is gone: every query on it fails in the driver (OperationalError),
    as it does when the database is unreachable."""
    with sqlite3.connect(database) as db:
        db.execute("DROP TABLE meetings")


async def test_a_tool_query_failing_mid_call_is_logged_once_with_the_call_context(
    tmp_path: Path, sim: ProviderSim
) -> None:
    """The caller asks for free slots while the database fails: one warning line names the
    failure, the tool and the call (call_sid, call_id); the caller hears the model's answer
    and the call is not ended."""
    sid = "CA" + "db" * 16
    async with call_server(
        tmp_path,
        sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        llm_base_url=sim.base_url,
        llm_api_key="sim-key",
    ) as (base, _settings):
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            async with place_call(
                base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
            ) as call:
                await call.wait_for_greeting(20)
                marks = len(call.metrics.marks)
                await asyncio.to_thread(_drop_meetings, tmp_path / "calls.db")
                call.say(pcm16_to_ulaw(hebrew_speech(QUESTION)))
                await call.wait_until(lambda: len(call.metrics.marks) > marks, 30)
                assert not call.ended
    tools = [r for r in sim.log if r.stage == "llm" and r.detail == "propose_slots"]
    assert tools, "the model never called the tool"
    failures = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert [e["event"] for e in failures] == ["brain.tool_failed"], failures
    assert failures[0]["tool"] == "propose_slots"
    assert failures[0]["error"] == "OperationalError"
    assert failures[0].get("call_sid") == sid
    assert isinstance(failures[0].get("call_id"), int)
