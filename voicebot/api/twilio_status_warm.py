"""Status-callback statements warmed at start-up on every pooled Postgres connection.

A process's first status callbacks paid for work done once: SQLAlchemy compiling each
statement (once per process) and asyncpg preparing it (once per connection, a round trip
and a server-side parse). At 200 callbacks/s that landed in the first second of traffic:
the first final status cost ~17 ms of CPU and each further connection ~2.5 ms more,
while every other request queued behind them (BENCHMARKS.md, #9).

:func:`warm_status_statements` runs the callback's own code (the progress and final-status
statements, and the final status's ORM path) on made-up rows inside one transaction per
connection and rolls it back: nothing is stored, no lock outlives it, but each connection
holds the prepared statements and the process the compiled ones that real callbacks then
reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from voicebot.api.twilio_status import FINAL, PROGRESS, settle_in
from voicebot.config import Settings
from voicebot.db.models import (
    AttemptStatus,
    Call,
    CallOutcome,
    CallStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    Lead,
    MemberState,
)
from voicebot.db.outcomes import STATUS_OUTCOMES
from voicebot.logging import quiet

log = structlog.get_logger(__name__)

STATUS_WARM_TIMEOUT_S: Final = 10.0
"""Bound on the whole warm-up; past it the app starts and the rest warms on first use."""
WARM_PHONE_PREFIX: Final = "+000"
"""No real number starts with country code 0: a made-up lead never meets a real one."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One made-up call's callbacks, in order: progress statuses, then a final one."""

    statuses: tuple[str, ...]
    duration_s: str | None = None
    outcome_before: CallOutcome | None = None
    """The outcome the call already has (a conversation the stream recorded)."""


SCENARIOS: Final = (
    # Busy / no answer: the member is retried later, the lead unreachable.
    Scenario(("initiated", "ringing", "busy")),
    # A bad number: the member failed.
    Scenario(("initiated", "failed")),
    # A conversation that ended: its outcome already stored, Twilio's completed follows.
    Scenario(
        ("initiated", "ringing", "in-progress", "completed"),
        duration_s="42",
        outcome_before=CallOutcome.NOT_INTERESTED,
    ),
)


async def warm_status_statements(engine: AsyncEngine, settings: Settings, connections: int) -> int:
    """Run :data:`SCENARIOS` through the status callback's code on ``connections`` pooled
    connections at once (capped at the pool's size), each in a transaction rolled back.
    Returns how many connections were warmed; SQLite or ``connections`` 0: 0.

    Best effort, bounded by :data:`STATUS_WARM_TIMEOUT_S`: a failure is logged once
    (``db.status_warm_failed``) and the app starts anyway. Info events of the made-up rows
    (a lead's status change, a member settled) are not logged.
    """
    if engine.dialect.name != "postgresql" or connections <= 0:
        return 0
    wanted = min(connections, engine.pool.size())  # type: ignore[attr-defined]
    opened: list[AsyncConnection] = []
    warmed = 0
    started = time.perf_counter()
    try:
        async with asyncio.timeout(STATUS_WARM_TIMEOUT_S):
            # All checked out at once, so each is a different pooled connection.
            for _ in range(wanted):
                opened.append(await engine.connect())
            with quiet():
                for conn in opened:
                    await _warm_one(conn, settings)
                    warmed += 1
    except (OSError, TimeoutError, SQLAlchemyError) as exc:
        log.warning("db.status_warm_failed", error=repr(exc), warmed=warmed, wanted=wanted)
    finally:
        for conn in opened:
            with contextlib.suppress(Exception):
                await conn.close()
    log.info(
        "db.status_warmed",
        connections=warmed,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return warmed


async def _warm_one(conn: AsyncConnection, settings: Settings) -> None:
    """Every scenario on ``conn``, in one transaction that is rolled back."""
    transaction = await conn.begin()
    try:
        # rollback_only: the route's commit() ends the session's part, not the transaction.
        session = AsyncSession(
            bind=conn, join_transaction_mode="rollback_only", expire_on_commit=False
        )
        for scenario in SCENARIOS:
            await _run(session, conn, settings, scenario)
            session.expunge_all()
        await session.close()
    finally:
        await transaction.rollback()


async def _run(
    session: AsyncSession, conn: AsyncConnection, settings: Settings, scenario: Scenario
) -> None:
    """Two made-up campaign calls, dialed and called back as Twilio would: one ends
    through the final-status statement, the other through the ORM path (a campaign with
    a webhook, a callback without an attempt id)."""
    *progress, final = scenario.statuses
    for by_statement in (True, False):
        attempt_id = await _seed(session, scenario)
        # The route loads the rows it settles: nothing of the seed may stay in the session.
        session.expunge_all()
        call_sid = "CA" + secrets.token_hex(16)
        now = datetime.now(UTC)
        for status in progress:
            params = PROGRESS.params(
                token=secrets.token_hex(16),
                attempt_id=attempt_id,
                call_sid=call_sid,
                status=status,
                duration_s=None,
                answered_by=None,
                now=now,
            )
            await conn.execute(PROGRESS.statement, params)
        if by_statement:
            params = FINAL.params(
                token=secrets.token_hex(16),
                attempt_id=attempt_id,
                call_sid=call_sid,
                status=final,
                outcome=STATUS_OUTCOMES.get(final),
                duration_s=int(scenario.duration_s) if scenario.duration_s else None,
                answered_by=None,
                tz=settings.tz,
                now=now,
            )
            await conn.execute(FINAL.statement, params)
            continue
        form = {"CallSid": call_sid, "CallStatus": final}
        if scenario.duration_s is not None:
            form["CallDuration"] = scenario.duration_s
        await settle_in(session, settings, form, secrets.token_hex(16), str(attempt_id))


async def _seed(session: AsyncSession, scenario: Scenario) -> int:
    """A running campaign with one lead being dialed, as the sweeper leaves it; the
    attempt's id."""
    now = datetime.now(UTC)
    lead = Lead(
        phone=f"{WARM_PHONE_PREFIX}{secrets.randbelow(10**12):012d}",
        status="new",
        tags=[],
    )
    campaign = Campaign(name="warm-up", status=CampaignStatus.RUNNING, started_at=now)
    session.add_all([lead, campaign])
    await session.flush()
    member = CampaignLead(
        campaign_id=campaign.id, lead_id=lead.id, state=MemberState.DIALING, attempts=1
    )
    fields: dict[str, Any] = {}
    if scenario.outcome_before is not None:
        fields = {"outcome": scenario.outcome_before, "ended_at": now + timedelta(seconds=1)}
    call = Call(
        lead_id=lead.id,
        campaign_id=campaign.id,
        status=CallStatus.QUEUED,
        status_events=[],
        **fields,
    )
    session.add_all([member, call])
    await session.flush()
    attempt = CampaignAttempt(
        campaign_id=campaign.id,
        member_id=member.id,
        lead_id=lead.id,
        attempt_no=1,
        idempotency_key=f"warm-{secrets.token_hex(16)}",
        status=AttemptStatus.DIALING,
        call_id=call.id,
    )
    session.add(attempt)
    await session.flush()
    return attempt.id
