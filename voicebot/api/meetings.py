"""Meetings: create (business hours, no overlap), list by range, get, cancel."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_body, parse_path, parse_query
from voicebot.api.schemas import (
    MeetingIn,
    MeetingOut,
    MeetingPage,
    MeetingPath,
    MeetingQuery,
    iso,
)
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.db import meetings as booking
from voicebot.db import queries
from voicebot.db.models import Meeting, MeetingStatus
from voicebot.db.types import utcnow
from voicebot.errors import InvalidStateError, NotFoundError


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


@operation(
    summary="Book a meeting",
    tags=("meetings",),
    description="Within business hours, not in the past, not overlapping another meeting.",
    body=MeetingIn,
    replies=(Returns(201, MeetingOut),),
    errors=(404, 409, 422),
)
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


@operation(
    summary="List meetings in a range",
    tags=("meetings",),
    description="Meetings that overlap [from, to), by start time.",
    query=MeetingQuery,
    replies=(Returns(200, MeetingPage),),
)
async def list_meetings(request: Request) -> Response:
    q = parse_query(request, MeetingQuery)
    limit, offset, start, end = q.limit, q.offset, q.start, q.end
    state = app_state(request)
    async with state.sessions() as session:
        rows = await queries.meetings_between(
            session, start, end, status=q.status, lead_id=q.lead_id, limit=limit, offset=offset
        )
    return JSONResponse(
        {
            "items": [meeting_json(m, state.settings.tz) for m in rows],
            "limit": limit,
            "offset": offset,
        }
    )


async def _get(request: Request, session: Any) -> Meeting:
    meeting_id = parse_path(request, MeetingPath).meeting_id
    meeting: Meeting | None = await session.get(Meeting, meeting_id)
    if meeting is None:
        raise NotFoundError(f"meeting {meeting_id} not found")
    return meeting


@operation(
    summary="Get a meeting",
    tags=("meetings",),
    path=MeetingPath,
    replies=(Returns(200, MeetingOut),),
    errors=(404, 422),
)
async def read_meeting(request: Request) -> Response:
    state = app_state(request)
    async with state.sessions() as session:
        return JSONResponse(meeting_json(await _get(request, session), state.settings.tz))


@operation(
    summary="Cancel a meeting",
    tags=("meetings",),
    path=MeetingPath,
    replies=(Returns(200, MeetingOut),),
    errors=(404, 409, 422),
)
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
