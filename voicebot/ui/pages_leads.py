"""Console pages for leads (search, status, history, do-not-call toggle) and meetings as a
week calendar (Sunday first, business hours shaded, Shabbat and Israeli holidays marked
by the IL calendar of :mod:`voicebot.scheduling`, each meeting linking to its call)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from voicebot.api.dnc import add_to_dnc, remove_from_dnc
from voicebot.api.state import app_state
from voicebot.db import queries
from voicebot.db.models import DoNotCall, Lead, LeadStatus, Meeting, MeetingStatus
from voicebot.db.queries import CallFilter
from voicebot.db.types import utcnow
from voicebot.errors import ConflictError, NotFoundError
from voicebot.scheduling import closed_reason, day_hours
from voicebot.scheduling.calendars import il_holiday_name
from voicebot.ui.render import page, query_day

LEADS_PAGE_SIZE = 50
LEAD_HISTORY_CALLS = 50
CALENDAR_FIRST_HOUR = 7
CALENDAR_LAST_HOUR = 21  # the last row starts at 20:00
DAYS_PER_WEEK = 7
SATURDAY = 5  # Python weekday number


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 10 else None


async def leads_list(request: Request) -> Response:
    params = request.query_params
    status = params.get("status") or None
    if status not in {s.value for s in LeadStatus}:
        status = None
    search = (params.get("q") or "").strip()[:200] or None
    offset = _int(params.get("offset")) or 0
    stmt = queries.leads_select(status=status, search=search)
    async with app_state(request).sessions() as session:
        total = int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
        leads = list((await session.scalars(stmt.limit(LEADS_PAGE_SIZE).offset(offset))).all())
    context = {
        "leads": leads,
        "total": total,
        "q": search or "",
        "status": status or "",
        "statuses": [s.value for s in LeadStatus],
        "offset": offset,
        "page_size": LEADS_PAGE_SIZE,
    }
    return page(request, "leads.html", context)


async def lead_page(request: Request) -> Response:
    lead_id = int(request.path_params["lead_id"])
    async with app_state(request).sessions() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None:
            return page(request, "not_found.html", status_code=404)
        calls = await queries.list_calls(
            session, CallFilter(lead_id=lead_id), limit=LEAD_HISTORY_CALLS
        )
        meetings = await queries.meetings_between(session, None, None, lead_id=lead_id)
        memberships = await queries.lead_memberships(session, lead_id)
        campaigns = await queries.campaign_names(session)
        dnc = await session.scalar(select(DoNotCall.id).where(DoNotCall.phone == lead.phone))
    context = {
        "lead": lead,
        "calls": calls,
        "meetings": meetings,
        "memberships": memberships,
        "campaigns": campaigns,
        "dnc": dnc is not None,
    }
    return page(request, "lead.html", context)


async def toggle_dnc(request: Request) -> Response:
    """Put the lead's number on do-not-call, or take it off (the lead goes back to
    ``contacted``, or ``new`` when never called)."""
    lead_id = int(request.path_params["lead_id"])
    form = await request.form()
    on = form.get("dnc") == "on"
    async with app_state(request).sessions() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None:
            return page(request, "not_found.html", status_code=404)
        phone = lead.phone
        if on:
            with contextlib.suppress(ConflictError):  # already listed: the goal holds
                await add_to_dnc(
                    session,
                    phone,
                    reason="console",
                    source="console",
                    settings=app_state(request).settings,
                )
        else:
            with contextlib.suppress(NotFoundError):  # already off the list
                await remove_from_dnc(session, phone)
            lead = await session.get(Lead, lead_id)
            if lead is not None and lead.status == LeadStatus.DO_NOT_CALL:
                lead.status = LeadStatus.CONTACTED if lead.attempts else LeadStatus.NEW
                await session.commit()
    return RedirectResponse(f"/ui/leads/{lead_id}", 303)


@dataclass
class CalendarDay:
    day: date
    closed: str | None  # "Shabbat" or the holiday's name
    open_from: int | None  # first business hour (local), None when closed
    open_until: float | None  # end of business hours, in hours
    short: str = ""
    meetings: dict[int, list[Meeting]] = field(default_factory=dict)  # by start hour


def week_start(day: date) -> date:
    """The Sunday on or before ``day``."""
    return day - timedelta(days=(day.weekday() + 1) % DAYS_PER_WEEK)


def calendar_days(first: date) -> list[CalendarDay]:
    days = []
    for offset in range(DAYS_PER_WEEK):
        day = first + timedelta(days=offset)
        hours = day_hours("IL", day)
        reason = closed_reason("IL", day)
        if reason is not None and day.weekday() != SATURDAY:
            reason = il_holiday_name(day, "he") or reason
        elif reason is not None:
            reason = "שבת"
        if hours is None:
            days.append(CalendarDay(day=day, closed=reason, open_from=None, open_until=None))
            continue
        until = 24.0 if hours.end is None else hours.end.hour + hours.end.minute / 60
        days.append(
            CalendarDay(
                day=day,
                closed=None,
                open_from=hours.start.hour,
                open_until=until,
                short=hours.reason,
            )
        )
    return days


async def meetings_week(request: Request) -> Response:
    state = app_state(request)
    tz = state.settings.tz
    chosen = query_day(request.query_params.get("week")) or utcnow().astimezone(tz).date()
    first = week_start(chosen)
    days = calendar_days(first)
    start = datetime.combine(first, time(0), tzinfo=tz)
    end = start + timedelta(days=DAYS_PER_WEEK)
    async with state.sessions() as session:
        meetings = [
            m
            for m in await queries.meetings_between(session, start, end)
            if m.status != MeetingStatus.CANCELLED
        ]
        leads = await queries.leads_by_id(session, [m.lead_id for m in meetings])
    by_day = {d.day: d for d in days}
    for meeting in meetings:
        local = meeting.start_at.astimezone(tz)
        slot = min(max(local.hour, CALENDAR_FIRST_HOUR), CALENDAR_LAST_HOUR - 1)
        if local.date() in by_day:
            by_day[local.date()].meetings.setdefault(slot, []).append(meeting)
    context: dict[str, Any] = {
        "days": days,
        "hours": list(range(CALENDAR_FIRST_HOUR, CALENDAR_LAST_HOUR)),
        "leads": leads,
        "first": first,
        "last": first + timedelta(days=DAYS_PER_WEEK - 1),
        "prev": (first - timedelta(days=DAYS_PER_WEEK)).isoformat(),
        "next": (first + timedelta(days=DAYS_PER_WEEK)).isoformat(),
        "today": utcnow().astimezone(tz).date(),
    }
    return page(request, "meetings.html", context)


routes = [
    Route("/leads", leads_list, methods=["GET"]),
    Route("/leads/{lead_id:rowid}", lead_page, methods=["GET"]),
    Route("/leads/{lead_id:rowid}/dnc", toggle_dnc, methods=["POST"]),
    Route("/meetings", meetings_week, methods=["GET"]),
]
