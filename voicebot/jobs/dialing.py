"""One dialing pass over a campaign: who is due, inside the calling window, under the caps.

Pure database + dialer logic, so tests drive it directly against Postgres/SQLite and the
Twilio REST simulator; the Dramatiq actor in :mod:`voicebot.jobs.actors` only schedules it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.config import WEEKDAY_NAMES, Settings
from voicebot.db.models import (
    Call,
    CallOutcome,
    CallStatus,
    Campaign,
    CampaignLead,
    CampaignStatus,
    DoNotCall,
    Lead,
    LeadStatus,
    MemberState,
)
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow
from voicebot.errors import TelephonyError

log = structlog.get_logger(__name__)
ACTIVE_STATES = (MemberState.DIALING, MemberState.IN_CALL)
DUE_STATES = (MemberState.PENDING, MemberState.RETRY)
BLOCKED_LEAD_STATUSES = (LeadStatus.DO_NOT_CALL, LeadStatus.WRONG_NUMBER)


class Dialer(Protocol):
    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        machine_detection: bool = False,
        async_amd_callback: str | None = None,
        wait_for_message_end: bool = False,
    ) -> str: ...


@dataclass
class DialReport:
    placed: list[int] = field(default_factory=list)
    skipped_dnc: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    outside_window: bool = False
    campaign_done: bool = False
    next_window_at: datetime | None = None


def in_window(campaign: Campaign, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(campaign.timezone))
    days = {WEEKDAY_NAMES[d.strip()] for d in campaign.window_days.split(",") if d.strip()}
    start, end = time.fromisoformat(campaign.window_start), time.fromisoformat(campaign.window_end)
    return local.weekday() in days and start <= local.time() < end


async def dial_due(
    *,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    dialer: Dialer,
    campaign_id: int,
    now: datetime | None = None,
) -> DialReport:
    """Place the calls that are due now, within the campaign's caps; never a do-not-call number."""
    now = now or utcnow()
    report = DialReport()
    async with sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None or campaign.status != CampaignStatus.RUNNING:
            return report
        if not in_window(campaign, now):
            report.outside_window = True
            return report
        active = int(
            await session.scalar(
                select(func.count(CampaignLead.id)).where(
                    CampaignLead.campaign_id == campaign_id, CampaignLead.state.in_(ACTIVE_STATES)
                )
            )
            or 0
        )
        capacity = min(
            campaign.max_concurrent_calls - active,
            max(1, int(campaign.calls_per_second * 5)),
        )
        due = (
            await session.execute(
                select(CampaignLead, Lead)
                .join(Lead, Lead.id == CampaignLead.lead_id)
                .where(CampaignLead.campaign_id == campaign_id)
                .where(CampaignLead.state.in_(DUE_STATES))
                .where(
                    or_(CampaignLead.next_attempt_at.is_(None), CampaignLead.next_attempt_at <= now)
                )
                .order_by(CampaignLead.id)
                .limit(max(capacity, 0))
            )
        ).all()
        dnc = set((await session.scalars(select(DoNotCall.phone))).all())
        for member, lead in due:
            if lead.phone in dnc or lead.status in BLOCKED_LEAD_STATUSES:
                member.state = MemberState.SKIPPED
                member.last_outcome = "do_not_call"
                report.skipped_dnc.append(lead.id)
                continue
            call = Call(
                lead_id=lead.id,
                campaign_id=campaign_id,
                direction="outbound",
                status=CallStatus.QUEUED,
                to_number=lead.phone,
                from_number=settings.twilio_from_number,
            )
            session.add(call)
            member.attempts += 1
            lead.attempts += 1
            lead.last_called_at = now
            await session.flush()
            try:
                call.call_sid = await dialer.create_call(
                    to=lead.phone,
                    from_=settings.twilio_from_number or "",
                    url=f"{settings.public_base_url}/twilio/voice",
                    status_callback=f"{settings.public_base_url}/twilio/status",
                    # Synchronous detection: the voice webhook gets AnsweredBy, after the
                    # beep for a machine, and leaves the voicemail message.
                    machine_detection=True,
                    wait_for_message_end=True,
                )
            except TelephonyError as exc:
                call.status = CallStatus.FAILED
                await record_outcome(session, call, CallOutcome.FAILED)
                report.failed.append(lead.id)
                if member.attempts >= campaign.max_attempts:
                    member.state = MemberState.FAILED
                else:
                    member.state = MemberState.RETRY
                    member.next_attempt_at = now + timedelta(minutes=campaign.retry_base_min)
                log.warning(
                    "campaign.dial_failed",
                    campaign_id=campaign_id,
                    lead_id=lead.id,
                    error=exc.message,
                )
                continue
            call.status = CallStatus.INITIATED
            member.state = MemberState.DIALING
            report.placed.append(lead.id)
        remaining = int(
            await session.scalar(
                select(func.count(CampaignLead.id)).where(
                    CampaignLead.campaign_id == campaign_id,
                    CampaignLead.state.in_((*DUE_STATES, *ACTIVE_STATES)),
                )
            )
            or 0
        )
        if remaining == 0:
            campaign.status = CampaignStatus.COMPLETED
            campaign.finished_at = now
            report.campaign_done = True
        await session.commit()
    return report
