"""Webhook events, recorded in the transaction of the change they report.

:func:`emit` adds one :class:`~voicebot.db.models.WebhookDelivery` row (the outbox) to
the caller's session: the event exists exactly when its change commits, and the
dispatcher (:mod:`voicebot.webhooks.delivery`) sends it afterwards. The target is the
campaign's ``webhook_url``, else the global ``WEBHOOK_URL``; with neither, nothing is
recorded. Payloads are plain JSON built here from the rows, never from wire dicts.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.config import Settings
from voicebot.db.models import (
    Call,
    CallTurn,
    Campaign,
    DeliveryStatus,
    Lead,
    Meeting,
    WebhookDelivery,
)
from voicebot.db.types import utcnow

log = structlog.get_logger(__name__)


class EventType(StrEnum):
    CAMPAIGN_STARTED = "campaign.started"
    CAMPAIGN_PAUSED = "campaign.paused"
    CAMPAIGN_COMPLETED = "campaign.completed"
    CALL_STARTED = "call.started"
    CALL_COMPLETED = "call.completed"
    MEETING_BOOKED = "meeting.booked"
    LEAD_OPTED_OUT = "lead.opted_out"


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def emit(
    session: AsyncSession,
    settings: Settings,
    event_type: EventType,
    data: dict[str, Any],
    *,
    campaign_id: int | None = None,
) -> WebhookDelivery | None:
    """Record one event for delivery in ``session`` (the caller commits); None when no
    webhook is configured for it."""
    url = await webhook_url(session, settings, campaign_id)
    if not url:
        return None
    now = utcnow()
    event_id = new_event_id()
    delivery = WebhookDelivery(
        event_id=event_id,
        event_type=str(event_type),
        campaign_id=campaign_id,
        url=url,
        payload={
            "id": event_id,
            "type": str(event_type),
            "created_at": now.isoformat(),
            "data": data,
        },
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        expires_at=now + timedelta(seconds=settings.webhook_max_age_s),
    )
    session.add(delivery)
    log.info(
        "webhook.event", event_id=event_id, event_type=str(event_type), campaign_id=campaign_id
    )
    return delivery


async def webhook_url(
    session: AsyncSession, settings: Settings, campaign_id: int | None
) -> str | None:
    """Where an event of ``campaign_id`` (None: no campaign) goes: the campaign's webhook,
    else the deployment's, else None (no event is recorded)."""
    campaign = await session.get(Campaign, campaign_id) if campaign_id is not None else None
    return (campaign.webhook_url if campaign is not None else None) or settings.webhook_url


def campaign_data(campaign: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "status_reason": campaign.status_reason,
    }


async def emit_campaign(
    session: AsyncSession, settings: Settings, event_type: EventType, campaign_id: int
) -> None:
    """A campaign's status event, read from its row (the caller commits)."""
    campaign = await session.get(Campaign, campaign_id, populate_existing=True)
    if campaign is not None:
        await emit(session, settings, event_type, campaign_data(campaign), campaign_id=campaign_id)


async def emit_opted_out(
    session: AsyncSession, settings: Settings, phone: str, lead: Lead | None, *, source: str
) -> None:
    """``lead.opted_out``: the number went on do-not-call (asked on a call, or the API)."""
    await emit(
        session,
        settings,
        EventType.LEAD_OPTED_OUT,
        {"phone": phone, "lead": lead_data(lead), "source": source},
    )


async def emit_meeting_booked(session: AsyncSession, settings: Settings, meeting: Meeting) -> None:
    """``meeting.booked``, with the lead and the call's campaign."""
    call = await session.get(Call, meeting.call_id) if meeting.call_id is not None else None
    campaign_id = call.campaign_id if call is not None else None
    lead = await session.get(Lead, meeting.lead_id)
    await emit(
        session,
        settings,
        EventType.MEETING_BOOKED,
        meeting_data(meeting, lead, campaign_id),
        campaign_id=campaign_id,
    )


def call_started_data(call: Call) -> dict[str, Any]:
    return {
        "call_id": call.id,
        "call_sid": call.call_sid,
        "campaign_id": call.campaign_id,
        "lead_id": call.lead_id,
        "direction": call.direction,
        "answered_at": _iso(call.answered_at),
    }


def meeting_data(meeting: Meeting, lead: Lead | None, campaign_id: int | None) -> dict[str, Any]:
    return {
        "meeting_id": meeting.id,
        "lead_id": meeting.lead_id,
        "call_id": meeting.call_id,
        "campaign_id": campaign_id,
        "start_at": _iso(meeting.start_at),
        "end_at": _iso(meeting.end_at),
        "duration_min": meeting.duration_min,
        "lead": lead_data(lead),
    }


def lead_data(lead: Lead | None) -> dict[str, Any] | None:
    if lead is None:
        return None
    return {"lead_id": lead.id, "phone": lead.phone, "name": lead.name, "company": lead.company}


async def call_report(session: AsyncSession, settings: Settings, call: Call) -> dict[str, Any]:
    """The end-of-call report: outcome, answered-by, duration, transcript as heard,
    summary, meeting booked, per-turn latencies, recording URL."""
    turns = list(
        (
            await session.scalars(
                select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
            )
        ).all()
    )
    meetings = list(
        (await session.scalars(select(Meeting).where(Meeting.call_id == call.id))).all()
    )
    duration = call.duration_s
    if duration is None and call.answered_at is not None:
        duration = max(0, int((utcnow() - call.answered_at).total_seconds()))
    lead = await session.get(Lead, call.lead_id) if call.lead_id is not None else None
    campaign = await session.get(Campaign, call.campaign_id) if call.campaign_id else None
    # The WAV is stored as the stream closes, just after this report: a recorded
    # campaign's streamed call has its URL from the start, and the dispatcher holds the
    # report until the WAV is stored (or drops the URL when it never is). A call that
    # never streamed (no answer, busy) has no recording to wait for.
    recording = call.recording_key or (
        campaign is not None and campaign.record and call.stream_sid is not None
    )
    return {
        "call_id": call.id,
        "call_sid": call.call_sid,
        "campaign_id": call.campaign_id,
        "direction": call.direction,
        "lead": lead_data(lead),
        "outcome": call.outcome,
        "answered_by": call.answered_by,
        "started_at": _iso(call.started_at),
        "answered_at": _iso(call.answered_at),
        "duration_s": duration,
        "transcript": [
            {"role": t.role, "text": t.text, "interrupted": t.interrupted} for t in turns
        ],
        "summary": call.summary,
        "meeting": meeting_data(meetings[0], lead, call.campaign_id) if meetings else None,
        "latencies": [
            {"seq": t.seq, **(t.latency or {})}
            for t in turns
            if t.role == "assistant" and t.latency
        ],
        "recording_url": (
            f"{settings.public_base_url}/api/v1/calls/{call.id}/recording" if recording else None
        ),
    }
