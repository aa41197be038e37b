"""Claiming due campaign members: the database decides who is dialed, exactly once.

A claim runs in one transaction under the campaign's sweeper lease: it reads due
members (``FOR UPDATE SKIP LOCKED`` on Postgres; SQLite has one writer at a time),
drops those on do-not-call or without consent, defers those outside their own calling
window (evaluated on the lead's clock) to the window's next opening, and for the rest
creates an attempt row and a call row, then COMMITS — before any REST request. The
unique constraints on ``campaign_attempts`` are the last word: a second claimer of the
same member or of a lead already live in another campaign fails on the index and skips.

Account-wide concurrency is counted under a Postgres advisory lock held by the claim
transaction, so two campaigns' sweepers cannot both take the last slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.config import Settings
from voicebot.db.models import (
    LIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    Call,
    CallStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    DoNotCall,
    Lead,
    LeadStatus,
    MemberState,
)
from voicebot.db.types import utcnow
from voicebot.scheduling import CallingWindow, lead_timezones

log = structlog.get_logger(__name__)

DUE_STATES = (MemberState.PENDING, MemberState.RETRY)
IN_FLIGHT_STATES = (MemberState.DIALING, MemberState.IN_CALL)
BLOCKED_LEAD_STATUSES = (LeadStatus.DO_NOT_CALL, LeadStatus.WRONG_NUMBER)
SCAN_BATCH = 2000
"""Due members read per query while looking for ones inside their window."""
MAX_SCAN_BATCHES = 10
"""Bound on one pass's scan (20,000 members); the next pass carries on."""
NEVER_OPEN_RECHECK = timedelta(days=1)
"""A lead whose window never opens (every day blocked) is looked at again a day later."""
ACCOUNT_LOCK_KEY = 0x766F6963  # "voic": the advisory lock serialising account-wide claims


@dataclass
class ClaimReport:
    """What one claim did (lists of campaign member ids)."""

    claimed: list[int] = field(default_factory=list)
    """Attempt ids created and committed, ready to dial."""
    skipped_dnc: list[int] = field(default_factory=list)
    skipped_consent: list[int] = field(default_factory=list)
    deferred: int = 0
    """Members outside their lead's calling window, given the window's next opening."""
    busy_elsewhere: int = 0
    """Members whose lead is live in another campaign: left due."""


def campaign_window(campaign: Campaign) -> CallingWindow:
    """The campaign's calling window (validated on write; stale rows raise ValueError)."""
    return _window(
        campaign.window_days,
        campaign.window_start,
        campaign.window_end,
        campaign.calendar,
        tuple(campaign.blocked_dates or ()),
    )


@lru_cache(maxsize=256)
def _window(
    days: str, start: str, end: str, calendar: str, blocked: tuple[str, ...]
) -> CallingWindow:
    return CallingWindow.from_fields(
        window_days=days,
        window_start=start,
        window_end=end,
        calendar=calendar,
        blocked_dates=[date.fromisoformat(d) for d in blocked],
    )


@lru_cache(maxsize=4096)
def _zones(phone: str, override: str | None, default: str) -> tuple[ZoneInfo, ...]:
    """Every clock the lead may be on (several for a number spanning zones)."""
    return lead_timezones(phone, override, default)


def next_open_for(
    window: CallingWindow, lead: Lead, campaign: Campaign, now: datetime
) -> datetime | None:
    """When ``lead`` may next be called: ``now`` if its window is open now, else the next
    opening on the lead's own clock, on every one of its clocks when its number spans
    zones (None when nothing opens within the horizon)."""
    return window.next_open_in_all(now, _zones(lead.phone, lead.timezone, campaign.timezone))


async def live_counts(session: AsyncSession, campaign_id: int) -> tuple[int, int]:
    """(live attempts of this campaign, live attempts account-wide)."""
    rows = (
        await session.execute(
            select(CampaignAttempt.campaign_id, func.count())
            .where(CampaignAttempt.status.in_(LIVE_ATTEMPT_STATUSES))
            .group_by(CampaignAttempt.campaign_id)
        )
    ).all()
    mine = sum(int(n) for cid, n in rows if cid == campaign_id)
    return mine, sum(int(n) for _, n in rows)


async def claim_due(
    session: AsyncSession,
    *,
    settings: Settings,
    campaign: Campaign,
    owner: str,
    limit: int,
    now: datetime | None = None,
) -> ClaimReport:
    """Claim up to ``limit`` due members of a running ``campaign``; commits.

    ``limit`` is the pacing budget of this pass; the campaign's ``max_concurrent_calls``
    and ``TWILIO_MAX_CONCURRENT_CALLS`` bound it further.
    """
    now = now or utcnow()
    report = ClaimReport()
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ACCOUNT_LOCK_KEY})
    mine, everyone = await live_counts(session, campaign.id)
    budget = min(
        limit,
        campaign.max_concurrent_calls - mine,
        settings.twilio_max_concurrent_calls - everyone,
    )
    window = campaign_window(campaign)
    dnc = set((await session.scalars(select(DoNotCall.phone))).all())
    opens_by_zone: dict[str, datetime | None] = {}
    live_leads = select(CampaignAttempt.lead_id).where(
        CampaignAttempt.status.in_(LIVE_ATTEMPT_STATUSES)
    )
    for _ in range(MAX_SCAN_BATCHES):
        if budget <= 0:
            break
        batch = (
            await session.execute(
                select(CampaignLead, Lead)
                .join(Lead, Lead.id == CampaignLead.lead_id)
                .where(CampaignLead.campaign_id == campaign.id)
                .where(CampaignLead.state.in_(DUE_STATES))
                .where(
                    or_(CampaignLead.next_attempt_at.is_(None), CampaignLead.next_attempt_at <= now)
                )
                .where(CampaignLead.lead_id.not_in(live_leads))
                .order_by(CampaignLead.next_attempt_at.nulls_first(), CampaignLead.id)
                .limit(SCAN_BATCH)
                .with_for_update(of=CampaignLead, skip_locked=True)
            )
        ).all()
        if not batch:
            break
        ready: list[tuple[CampaignLead, Lead]] = []
        deferred: dict[datetime, list[int]] = {}
        for member, lead in batch:
            if lead.phone in dnc or lead.status in BLOCKED_LEAD_STATUSES:
                member.state, member.last_outcome = MemberState.SKIPPED, "do_not_call"
                report.skipped_dnc.append(member.id)
                continue
            if campaign.consent_required and lead.consent_at is None and not lead.consent_source:
                member.state, member.last_outcome = MemberState.SKIPPED, "no_consent"
                report.skipped_consent.append(member.id)
                continue
            zones = _zones(lead.phone, lead.timezone, campaign.timezone)
            clocks = ",".join(zone.key for zone in zones)
            if clocks not in opens_by_zone:  # the same for every lead on these clocks
                opens_by_zone[clocks] = window.next_open_in_all(now, zones)
            opens = opens_by_zone[clocks]
            if opens is None or opens > now:
                deferred.setdefault(opens or now + NEVER_OPEN_RECHECK, []).append(member.id)
                continue
            if len(ready) < budget:
                ready.append((member, lead))
        for opens_at, member_ids in deferred.items():
            await session.execute(
                update(CampaignLead)
                .where(CampaignLead.id.in_(member_ids))
                .values(next_attempt_at=opens_at)
                .execution_options(synchronize_session=False)
            )
            report.deferred += len(member_ids)
        numbers = await _next_attempt_numbers(session, [m.id for m, _ in ready])
        for member, lead in ready:
            attempt_id = await _claim_one(
                session, settings, campaign, member, lead, numbers[member.id], owner, now
            )
            if attempt_id is None:
                report.busy_elsewhere += 1
            else:
                report.claimed.append(attempt_id)
                budget -= 1
        if len(batch) < SCAN_BATCH or len(ready) == len(batch):
            break
    await session.commit()
    return report


async def _next_attempt_numbers(session: AsyncSession, member_ids: list[int]) -> dict[int, int]:
    if not member_ids:
        return {}
    rows = (
        await session.execute(
            select(CampaignAttempt.member_id, func.max(CampaignAttempt.attempt_no))
            .where(CampaignAttempt.member_id.in_(member_ids))
            .group_by(CampaignAttempt.member_id)
        )
    ).all()
    found = {int(m): int(n) for m, n in rows}
    return {m: found.get(m, 0) + 1 for m in member_ids}


async def _claim_one(
    session: AsyncSession,
    settings: Settings,
    campaign: Campaign,
    member: CampaignLead,
    lead: Lead,
    attempt_no: int,
    owner: str,
    now: datetime,
) -> int | None:
    """Create the attempt + call rows for one member; None when the DB refuses (the lead is
    live elsewhere, or another claimer took this attempt number)."""
    try:
        async with session.begin_nested():
            call = Call(
                lead_id=lead.id,
                campaign_id=campaign.id,
                direction="outbound",
                status=CallStatus.QUEUED,
                to_number=lead.phone,
                from_number=settings.twilio_from_number,
            )
            session.add(call)
            await session.flush()
            attempt = CampaignAttempt(
                campaign_id=campaign.id,
                member_id=member.id,
                lead_id=lead.id,
                attempt_no=attempt_no,
                idempotency_key=f"c{campaign.id}-m{member.id}-a{attempt_no}",
                status=AttemptStatus.CLAIMED,
                call_id=call.id,
                claimed_by=owner,
            )
            session.add(attempt)
            await session.flush()
    except IntegrityError:
        return None
    member.state = MemberState.DIALING
    member.attempts += 1
    lead.attempts += 1
    lead.last_called_at = now
    return attempt.id


async def release_claimed(
    session: AsyncSession, campaign_id: int, *, reason: str, attempt_ids: list[int] | None = None
) -> int:
    """Give back claimed, never-dialed attempts (pause, cancel, our own error): the attempt
    becomes ``not_dialed`` and its member due again (or skipped when cancelled). The
    caller commits. Returns how many were released."""
    stmt = select(CampaignAttempt).where(
        CampaignAttempt.campaign_id == campaign_id,
        CampaignAttempt.status == AttemptStatus.CLAIMED,
    )
    if attempt_ids is not None:
        stmt = stmt.where(CampaignAttempt.id.in_(attempt_ids))
    attempts = (await session.scalars(stmt.with_for_update(skip_locked=True))).all()
    for attempt in attempts:
        await give_back(session, attempt, status=AttemptStatus.NOT_DIALED, reason=reason)
    return len(attempts)


async def give_back(
    session: AsyncSession,
    attempt: CampaignAttempt,
    *,
    status: AttemptStatus,
    reason: str,
    retry_at: datetime | None = None,
) -> None:
    """End ``attempt`` without a call to the lead: not counted against its attempts.

    The member is due again (at ``retry_at``), or skipped when its campaign was cancelled.
    """
    attempt.status, attempt.reason = status, reason[:500]
    attempt.ended_at = utcnow()
    member = await session.get(CampaignLead, attempt.member_id)
    campaign = await session.get(Campaign, attempt.campaign_id)
    call = await session.get(Call, attempt.call_id) if attempt.call_id else None
    if call is not None and call.call_sid is None:
        call.status = CallStatus.CANCELED
        call.ended_at = utcnow()
    if member is None or member.state not in IN_FLIGHT_STATES:
        return
    member.attempts = max(0, member.attempts - 1)
    if campaign is not None and campaign.status == CampaignStatus.CANCELLED:
        member.state, member.last_outcome = MemberState.SKIPPED, "cancelled"
    else:
        member.state, member.next_attempt_at = MemberState.PENDING, retry_at


async def cancel_pending(session: AsyncSession, campaign_id: int) -> int:
    """Members not yet in a call of a cancelled campaign end as ``skipped``."""
    result: Any = await session.execute(
        update(CampaignLead)
        .where(CampaignLead.campaign_id == campaign_id, CampaignLead.state.in_(DUE_STATES))
        .values(state=MemberState.SKIPPED, last_outcome="cancelled")
    )
    return int(result.rowcount or 0)
