"""Lock order on Postgres: a final status callback and the call session's end-of-call
write for the same call, interleaved so each holds what the other wants next in the old
orders, both finish (no deadlock, no 500), and a deadlock that still happens is retried."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from tests.integration.api.test_twilio_status import SID, _callback, _rows, _seed
from tests.integration.api.test_twilio_status import settings as settings
from voicebot.db.models import (
    Call,
    CallStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    Lead,
)
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow

pytestmark = pytest.mark.integration

LOCK_WAIT_TIMEOUT_S = 10.0
"""How long a step waits for a transaction to be seen waiting on a row lock."""
POLL_S = 0.02


async def _waiting_on_locks(engine: AsyncEngine) -> int:
    """Backends of this database waiting for a lock (pg_stat_activity)."""
    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            )
            or 0
        )


async def _until_waiting(engine: AsyncEngine, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + LOCK_WAIT_TIMEOUT_S
    while await _waiting_on_locks(engine) < count:
        assert asyncio.get_running_loop().time() < deadline, f"never {count} lock waiters"
        await asyncio.sleep(POLL_S)


async def _session_finish(app: Starlette, call_id: int) -> None:
    """The call session's end-of-call transaction (CallRecorder.finish): the call ends
    'completed' with its summary, then record_outcome settles lead, attempt and member."""
    state = app.state.voicebot
    async with state.sessions() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        call.ended_at = call.ended_at or utcnow()
        call.status = CallStatus.COMPLETED
        call.summary = call.summary or "שיחה הסתיימה"
        await record_outcome(session, call, "not_interested", settings=state.settings)  # type: ignore[arg-type]
        await session.commit()


async def _interleaved(
    app: Starlette, client: httpx.AsyncClient, settings: Any, blocker: str
) -> tuple[Any, Any]:
    """Hold ``blocker`` (a row the session's write needs after it has begun) in a third
    transaction; start the session's write, then the final status callback, once the
    first waits; release. Returns (session result, callback result) as gathered."""
    ids = await _seed(app)
    assert (
        await _callback(client, settings, ids["attempt"], "in-progress", "p-1")
    ).status_code == 204
    engine: AsyncEngine = app.state.voicebot.engine
    table, key = blocker.split(":")
    async with engine.connect() as holder:
        await holder.execute(
            text(f"SELECT 1 FROM {table} WHERE id = :id FOR UPDATE"),  # noqa: S608
            {"id": ids[key]},
        )
        finish = asyncio.create_task(_session_finish(app, ids["call"]))
        await _until_waiting(engine, 1)
        status = asyncio.create_task(
            _callback(client, settings, ids["attempt"], "completed", "f-1", CallDuration="7")
        )
        await _until_waiting(engine, 2)
        await holder.rollback()
    results = await asyncio.gather(finish, status, return_exceptions=True)
    return ids, results


@pytest.mark.parametrize("blocker", ["campaign_leads:member", "leads:lead"])
async def test_final_callback_and_session_finish_interleaved_both_succeed(
    database_url: str, app: Starlette, client: httpx.AsyncClient, settings: Any, blocker: str
) -> None:
    """With the session's end-of-call write paused on a member or lead row it needs, a
    final 'completed' callback for the same call starts; released, both commit: the
    callback answers 204, the session's outcome and the callback's status both stand."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks and deadlocks are Postgres behaviour")
    ids, (finished, answer) = await _interleaved(app, client, settings, blocker)
    assert not isinstance(finished, BaseException), repr(finished)
    assert not isinstance(answer, BaseException), repr(answer)
    assert answer.status_code == 204, answer.text
    rows = await _rows(app, ids)
    assert rows["call"].outcome == "not_interested"
    assert rows["call"].status == "completed"
    assert rows["call"].call_sid == SID
    assert rows["call"].status_events == ["in-progress", "completed"]
    assert rows["attempt"].status == "ended"
    assert rows["member"].state == "done"
    assert rows["lead"].status == "not_interested"


async def test_a_final_callback_aborted_by_a_deadlock_is_rerun_and_answers_204(
    database_url: str, app: Starlette, client: httpx.AsyncClient, settings: Any
) -> None:
    """A writer that takes call then attempt (the wrong order) against a final 'busy'
    callback: Postgres aborts the callback's transaction (it waited first, so its deadlock
    check runs first); the callback reruns it and answers 204 with the outcome settled."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks and deadlocks are Postgres behaviour")
    ids = await _seed(app)
    engine: AsyncEngine = app.state.voicebot.engine
    async with engine.connect() as rogue:
        # Its own deadlock check comes late: the callback is the one Postgres aborts.
        await rogue.execute(text("SET LOCAL deadlock_timeout = '20s'"))
        await rogue.execute(
            text("SELECT 1 FROM calls WHERE id = :id FOR NO KEY UPDATE"), {"id": ids["call"]}
        )
        status = asyncio.create_task(_callback(client, settings, ids["attempt"], "busy", "b-1"))
        await _until_waiting(engine, 1)
        # Granted only once the callback's transaction (holding the attempt) is aborted.
        await rogue.execute(
            text("SELECT 1 FROM campaign_attempts WHERE id = :id FOR NO KEY UPDATE"),
            {"id": ids["attempt"]},
        )
        await rogue.commit()
    answer = await status
    assert answer.status_code == 204, answer.text
    rows = await _rows(app, ids)
    assert rows["call"].status == "busy"
    assert rows["call"].status_events == ["busy"]
    assert rows["call"].outcome == "no_answer"
    assert rows["member"].state == "retry"
    assert rows["events"] == 1


RACE_ROUNDS = 20
"""Calls raced in the many-rounds test (each: one final callback against one session end)."""


async def _seed_call(app: Starlette, n: int, *, webhook: bool) -> dict[str, int]:
    """A running campaign with one member in a call: attempt placed, call in progress."""
    now = utcnow()
    async with app.state.voicebot.sessions() as session:
        lead = Lead(phone=f"+9725447{n:05d}", status="new", consent_source="test", tags=[])
        campaign = Campaign(
            name=f"race-{n}",
            status=CampaignStatus.RUNNING,
            calendar="none",
            window_days="sun,mon,tue,wed,thu,fri,sat",
            window_start="00:00",
            window_end="24:00",
            started_at=now,
            webhook_url="https://hooks.example.com/voicebot" if webhook else None,
        )
        session.add_all([lead, campaign])
        await session.flush()
        member = CampaignLead(campaign_id=campaign.id, lead_id=lead.id, state="in_call", attempts=1)
        call = Call(
            lead_id=lead.id,
            campaign_id=campaign.id,
            call_sid=f"CA{n:032d}",
            status="in-progress",
            status_events=["in-progress"],
            started_at=now,
            answered_at=now,
        )
        session.add_all([member, call])
        await session.flush()
        attempt = CampaignAttempt(
            campaign_id=campaign.id,
            member_id=member.id,
            lead_id=lead.id,
            attempt_no=1,
            idempotency_key=f"race-{n}",
            status="placed",
            call_id=call.id,
            call_sid=call.call_sid,
        )
        session.add(attempt)
        await session.commit()
        return {"attempt": attempt.id, "call": call.id, "member": member.id, "lead": lead.id}


async def test_final_callbacks_raced_with_session_ends_never_deadlock(
    database_url: str, app: Starlette, client: httpx.AsyncClient, settings: Any
) -> None:
    """Many calls, each ended at once by the session's outcome write and Twilio's final
    'completed' callback (half with an end-of-call webhook, whose report flushes the call
    mid-transaction): every callback answers 204 and every session write commits."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks and deadlocks are Postgres behaviour")
    failures: list[str] = []
    for n in range(RACE_ROUNDS):
        ids = await _seed_call(app, n, webhook=n % 2 == 1)
        finished, answer = await asyncio.gather(
            _session_finish(app, ids["call"]),
            _callback(
                client, settings, ids["attempt"], "completed", f"race-{n}", sid=f"CA{n:032d}"
            ),
            return_exceptions=True,
        )
        if isinstance(finished, BaseException):
            failures.append(f"round {n}: session write {finished!r}")
        if isinstance(answer, BaseException) or answer.status_code != 204:
            failures.append(f"round {n}: callback {answer!r}")
        rows = await _rows(app, ids)
        assert (rows["call"].status, rows["call"].outcome) == ("completed", "not_interested")
        assert (rows["attempt"].status, rows["member"].state) == ("ended", "done")
    assert failures == []
