"""Meetings: create (business hours, no overlap), list by range, get, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import int_param, parse_body
from voicebot.api.leads import page_params
from voicebot.api.schemas import MeetingIn, iso
from voicebot.api.state import app_state
from voicebot.db import meetings as booking
from voicebot.db.models import Meeting, MeetingStatus
from voicebot.db.types import utcnow
from voicebot.errors import InvalidInputError, InvalidStateError, NotFoundError


def meeting_json(meeting: Meeting, tz: Any) -> dict[str, Any]:
    return {
        "id": meeting.id,
        "lead_id": meeting.lead_id,
        "call_id": meeting.call_id,
        "start": iso(meeting.start_at, tz),
        "end": iso(meeting.end_at, tz),
        "duration_min": meeting.duration_min,
        "status": meeting.status,
        "notes": meeting.notes,
        "created_at": iso(meeting.created_at, tz),
    }


def _aware_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+"))
    except ValueError as exc:
        raise InvalidInputError(
            f"{name} must be ISO 8601", details=[{"field": name, "message": "invalid datetime"}]
        ) from exc
    if value.tzinfo is None:
        raise InvalidInputError(
            f"{name} needs a UTC offset", details=[{"field": name, "message": "offset required"}]
        )
    return value


async def create_meeting(request: Request) -> Response:
    data = await parse_body(request, MeetingIn)
    state = app_state(request)
    async with state.sessions() as session:
        meeting = await booking.book_meeting(
            session,
            state.settings,
            lead_id=data.lead_id,
            start=data.start,
            duration_min=data.duration_min,
            notes=data.notes,
            call_id=data.call_id,
            now=utcnow(),
        )
        return JSONResponse(meeting_json(meeting, state.settings.tz), status_code=201)


async def list_meetings(request: Request) -> Response:
    limit, offset = page_params(request)
    start, end = _aware_param(request, "from"), _aware_param(request, "to")
    state = app_state(request)
    stmt = select(Meeting).order_by(Meeting.start_at)
    if start is not None:
        stmt = stmt.where(Meeting.end_at > start)
    if end is not None:
        stmt = stmt.where(Meeting.start_at < end)
    if status := request.query_params.get("status"):
        stmt = stmt.where(Meeting.status == status)
    if lead := request.query_params.get("lead_id"):
        if not lead.isdigit():
            raise InvalidInputError("lead_id must be an integer")
        stmt = stmt.where(Meeting.lead_id == int(lead))
    async with state.sessions() as session:
        rows = list((await session.scalars(stmt.limit(limit).offset(offset))).all())
    return JSONResponse(
        {
            "items": [meeting_json(m, state.settings.tz) for m in rows],
            "limit": limit,
            "offset": offset,
        }
    )


async def _get(request: Request, session: Any) -> Meeting:
    meeting_id = int_param(request, "meeting_id")
    meeting: Meeting | None = await session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFoundError(f"meeting {meeting_id} not found")
    return meeting


async def read_meeting(request: Request) -> Response:
    state = app_state(request)
    async with state.sessions() as session:
        return JSONResponse(meeting_json(await _get(request, session), state.settings.tz))


async def cancel_meeting(request: Request) -> Response:
    state = app_state(request)
    async with state.sessions() as session:
        meeting = await _get(request, session)
        if meeting.status != MeetingStatus.SCHEDULED:
            raise InvalidStateError(f"meeting is {meeting.status}, not scheduled")
        meeting.status = MeetingStatus.CANCELLED
        await session.commit()
        return JSONResponse(meeting_json(meeting, state.settings.tz))


routes = [
    Route("/meetings", create_meeting, methods=["POST"]),
    Route("/meetings", list_meetings, methods=["GET"]),
    Route("/meetings/{meeting_id:int}", read_meeting, methods=["GET"]),
    Route("/meetings/{meeting_id:int}/cancel", cancel_meeting, methods=["POST"]),
    Route("/meetings/{meeting_id:int}", cancel_meeting, methods=["DELETE"]),
]
