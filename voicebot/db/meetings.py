"""Booking rules on the database: business hours and no two active meetings overlapping."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.config import Settings
from voicebot.db.models import Lead, Meeting, MeetingStatus
from voicebot.errors import ConflictError, InvalidInputError, NotFoundError
from voicebot.notify.sms import queue_confirmation
from voicebot.webhooks.events import emit_meeting_booked

# Serialises bookings on Postgres across processes (one key for the meetings calendar).
BOOKING_ADVISORY_LOCK_KEY = 0x766F6963
_local_booking_lock = asyncio.Lock()


def check_business_hours(settings: Settings, start: datetime, duration_min: int) -> None:
    local = start.astimezone(settings.tz)
    end = local + timedelta(minutes=duration_min)
    ok = (
        local.weekday() in settings.business_weekdays
        and local.time() >= settings.business_hours_start
        and end.date() == local.date()
        and end.time() <= settings.business_hours_end
    )
    if not ok:
        raise InvalidInputError(
            "meeting is outside business hours",
            details=[
                {
                    "field": "start",
                    "message": (
                        f"must be on {settings.business_days} between "
                        f"{settings.business_hours_start:%H:%M} and "
                        f"{settings.business_hours_end:%H:%M} {settings.timezone}"
                    ),
                }
            ],
        )


async def overlapping(session: AsyncSession, start: datetime, end: datetime) -> Meeting | None:
    stmt = (
        select(Meeting)
        .where(Meeting.status == MeetingStatus.SCHEDULED)
        .where(Meeting.start_at < end)
        .where(Meeting.end_at > start)
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def busy_intervals(
    session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    stmt = (
        select(Meeting.start_at, Meeting.end_at)
        .where(Meeting.status == MeetingStatus.SCHEDULED)
        .where(Meeting.start_at < end)
        .where(Meeting.end_at > start)
        .order_by(Meeting.start_at)
    )
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def book_meeting(
    session: AsyncSession,
    settings: Settings,
    *,
    lead_id: int,
    start: datetime,
    duration_min: int | None = None,
    notes: str | None = None,
    call_id: int | None = None,
    now: datetime | None = None,
) -> Meeting:
    """Book and commit one meeting, or raise (404 lead, 422 hours/past, 409 overlap)."""
    duration = duration_min or settings.meeting_duration_min
    if now is not None and start <= now:
        raise InvalidInputError(
            "meeting must be in the future", details=[{"field": "start", "message": "in the past"}]
        )
    check_business_hours(settings, start, duration)
    end = start + timedelta(minutes=duration)
    async with _local_booking_lock:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": BOOKING_ADVISORY_LOCK_KEY}
            )
        if await session.get(Lead, lead_id) is None:
            raise NotFoundError(f"lead {lead_id} not found")
        clash = await overlapping(session, start, end)
        if clash is not None:
            raise ConflictError(
                "the time overlaps another meeting",
                details={"meeting_id": clash.id, "start": clash.start_at.isoformat()},
            )
        meeting = Meeting(
            lead_id=lead_id,
            call_id=call_id,
            start_at=start,
            end_at=end,
            duration_min=duration,
            notes=notes,
        )
        session.add(meeting)
        await session.flush()
        await emit_meeting_booked(session, settings, meeting)
        await queue_confirmation(session, settings, meeting)
        await session.commit()
    return meeting
