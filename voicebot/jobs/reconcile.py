"""Settling attempts that stopped making progress, from Twilio's own record of the call.

Nothing stays in flight for ever. For one campaign, under its sweeper lease:

* ``dialing`` with no SID past ``CAMPAIGN_DIAL_SETTLE_S`` (the dialer crashed or its
  request got no answer): ``calls.list`` for the lead's number since the attempt was
  sent. Found: the attempt is placed with that SID (a lead has at most one live attempt,
  so a call to its number in that span is ours). Not found: no call exists, the attempt
  is given back as ``not_dialed`` and the member is due again. Never a blind re-dial.
* ``placed`` with no progress past ``CAMPAIGN_RECONCILE_AFTER_S`` (lost callbacks, the
  web process down): ``calls(sid).fetch``; a final status is applied as if its callback
  had come. An answered stream call whose Media Stream never started within
  ``CAMPAIGN_STREAM_START_DEADLINE_S`` is hung up and failed (``stream_never_started``).
* a call that ended (``completed``) with no outcome recorded after the grace period
  (web crashed mid-call): outcome ``completed``, or ``failed`` when its stream never ran.

Failure: a REST error leaves the attempt as it was, for the next pass.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.api.twilio_status import apply_call_status
from voicebot.config import Settings
from voicebot.db.models import (
    AttemptStatus,
    Call,
    CallOutcome,
    CallStatus,
    CampaignAttempt,
    Lead,
)
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow
from voicebot.errors import TelephonyError
from voicebot.jobs.claims import give_back
from voicebot.jobs.dial import record_sid
from voicebot.telephony.rest import CallRecord

log = structlog.get_logger(__name__)

STREAM_NEVER_STARTED = "stream_never_started"
FINAL_STATUSES = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, "canceled"}
)
ENDED_WITHOUT_OUTCOME_GRACE = timedelta(seconds=15)
"""How long a finished call may wait for the conversation's own outcome (the recorder)."""
RECONCILE_BATCH = 50


class CallLookup(Protocol):
    async def fetch_call(self, call_sid: str) -> CallRecord | None: ...

    async def find_calls(self, *, to: str, created_after: datetime) -> list[CallRecord]: ...

    async def hangup(self, call_sid: str) -> None: ...


async def reconcile_campaign(
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    twilio: CallLookup,
    campaign_id: int,
    busy: Collection[int] = (),
    now: datetime | None = None,
) -> int:
    """Settle this campaign's stuck attempts (``busy``: attempt ids a dialer of this process
    is still sending). Returns how many attempts changed."""
    now = now or utcnow()
    dial_cutoff = now - timedelta(seconds=settings.campaign_dial_settle_s)
    placed_cutoff = now - timedelta(seconds=settings.campaign_reconcile_after_s)
    async with sessions() as session:
        stuck = (
            await session.scalars(
                select(CampaignAttempt)
                .where(CampaignAttempt.campaign_id == campaign_id)
                .where(
                    or_(
                        (CampaignAttempt.status == AttemptStatus.DIALING)
                        & (CampaignAttempt.dialing_at < dial_cutoff),
                        (CampaignAttempt.status == AttemptStatus.PLACED)
                        & (CampaignAttempt.updated_at < placed_cutoff),
                    )
                )
                .order_by(CampaignAttempt.id)
                .limit(RECONCILE_BATCH)
            )
        ).all()
        targets = [(a.id, a.status) for a in stuck if a.id not in busy]
    changed = 0
    for attempt_id, status in targets:
        try:
            if status == AttemptStatus.DIALING:
                changed += await _settle_dialing(sessions, twilio, attempt_id)
            else:
                changed += await _settle_placed(settings, sessions, twilio, attempt_id, now)
        except TelephonyError as exc:
            log.warning("campaign.reconcile_failed", attempt_id=attempt_id, error=exc.message)
    return changed


async def _settle_dialing(
    sessions: async_sessionmaker[AsyncSession], twilio: CallLookup, attempt_id: int
) -> int:
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id)
        lead = await session.get(Lead, attempt.lead_id) if attempt else None
        if attempt is None or lead is None or attempt.status != AttemptStatus.DIALING:
            return 0
        sent_at = attempt.dialing_at or attempt.created_at
        phone = lead.phone
    found = await twilio.find_calls(to=phone, created_after=sent_at)
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id, with_for_update=True)
        if attempt is None or attempt.status != AttemptStatus.DIALING:
            return 0
        if found:
            record = min(found, key=lambda r: r.created_at or sent_at)
            await record_sid(session, attempt_id, record.sid)
            log.info("campaign.reconciled_placed", attempt_id=attempt_id, call_sid=record.sid)
        else:
            await give_back(
                session, attempt, status=AttemptStatus.NOT_DIALED, reason="no call at Twilio"
            )
            log.info("campaign.reconciled_not_dialed", attempt_id=attempt_id)
        await session.commit()
    return 1


async def _settle_placed(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    twilio: CallLookup,
    attempt_id: int,
    now: datetime,
) -> int:
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id)
        if attempt is None or attempt.status != AttemptStatus.PLACED or not attempt.call_sid:
            return 0
        call_sid = attempt.call_sid
        call = await session.get(Call, attempt.call_id) if attempt.call_id else None
        ended_no_outcome = (
            call is not None
            and call.outcome is None
            and call.status in FINAL_STATUSES
            and (call.ended_at is None or call.ended_at < now - ENDED_WITHOUT_OUTCOME_GRACE)
        )
        never_started = (
            call is not None
            and settings.resolved_conversation_mode == "stream"
            and call.answered_at is not None
            and call.stream_started_at is None
            and call.answered_by in (None, "human", "unknown")
        )
    if ended_no_outcome:
        return await _finish(sessions, attempt_id, None, never_started=never_started)
    record = await twilio.fetch_call(call_sid)
    if record is None:
        return await _finish(sessions, attempt_id, CallStatus.FAILED)
    if record.status in FINAL_STATUSES:
        return await _finish(sessions, attempt_id, record.status, settings, record)
    if record.status == CallStatus.IN_PROGRESS and await _stream_never_started(
        settings, sessions, attempt_id, now
    ):
        await twilio.hangup(call_sid)
        return await _finish(sessions, attempt_id, None, never_started=True)
    async with sessions() as session:  # still live: look again after the deadline
        attempt = await session.get(CampaignAttempt, attempt_id)
        if attempt is not None:
            attempt.updated_at = utcnow()
            await session.commit()
    return 0


async def _stream_never_started(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    attempt_id: int,
    now: datetime,
) -> bool:
    if settings.resolved_conversation_mode != "stream":
        return False
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id)
        call = await session.get(Call, attempt.call_id) if attempt and attempt.call_id else None
        if call is None or call.answered_at is None or call.stream_started_at is not None:
            return False
        if call.answered_by not in (None, "human", "unknown"):
            return False
        deadline = timedelta(seconds=settings.campaign_stream_start_deadline_s)
        return call.answered_at < now - deadline


async def _finish(
    sessions: async_sessionmaker[AsyncSession],
    attempt_id: int,
    status: str | None,
    settings: Settings | None = None,
    record: CallRecord | None = None,
    *,
    never_started: bool = False,
) -> int:
    """Apply Twilio's final ``status`` (or, with None, settle a call that ended without an
    outcome: ``completed``, or ``failed`` when its stream never started)."""
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id, with_for_update=True)
        if attempt is None or attempt.status != AttemptStatus.PLACED or attempt.call_id is None:
            return 0
        call = await session.get(Call, attempt.call_id, with_for_update=True)
        if call is None:
            return 0
        if status is not None and settings is not None:
            duration = str(record.duration_s) if record and record.duration_s else None
            answered_by = record.answered_by if record else None
            await apply_call_status(
                session, settings, call, status, duration=duration, answered_by=answered_by
            )
        stream_missing = call.answered_at is not None and call.stream_started_at is None
        if call.outcome is None:
            failed = never_started or status == CallStatus.FAILED
            outcome = CallOutcome.FAILED if failed else CallOutcome.COMPLETED
            await record_outcome(session, call, outcome, settings=settings)
            if never_started or (failed and stream_missing):
                attempt.reason = STREAM_NEVER_STARTED
        if attempt.status == AttemptStatus.PLACED:  # record_outcome did not find it live
            attempt.status, attempt.ended_at = AttemptStatus.ENDED, utcnow()
        await session.commit()
    log.info("campaign.reconciled_call", attempt_id=attempt_id, status=status)
    return 1
