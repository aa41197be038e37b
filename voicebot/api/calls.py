"""Calls: list and get with turns (transcript and latency breakdown)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_path, parse_query
from voicebot.api.schemas import CallDetail, CallPage, CallPath, CallQuery, iso
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.db import queries
from voicebot.db.models import Call
from voicebot.db.queries import CallFilter
from voicebot.errors import NotFoundError
from voicebot.recordings.calls import store_of
from voicebot.recordings.storage import WAV_CONTENT_TYPE


def call_json(call: Call, *, with_turns: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": call.id,
        "call_sid": call.call_sid,
        "lead_id": call.lead_id,
        "campaign_id": call.campaign_id,
        "direction": call.direction,
        "status": call.status,
        "started_at": iso(call.started_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "duration_s": call.duration_s,
        "outcome": call.outcome,
        "answered_by": call.answered_by,
        "summary": call.summary,
        "recording_url": f"/api/v1/calls/{call.id}/recording" if call.recording_key else None,
    }
    if with_turns:
        body["turns"] = [
            {
                "seq": t.seq,
                "role": t.role,
                "text": t.text,
                "interrupted": t.interrupted,
                "intent": t.intent,
                "latency": t.latency,
                "created_at": iso(t.created_at),
            }
            for t in call.turns
        ]
    return body


@operation(
    summary="List calls",
    tags=("calls",),
    description="Newest first; filters by lead, campaign and status.",
    query=CallQuery,
    replies=(Returns(200, CallPage),),
)
async def list_calls(request: Request) -> Response:
    q = parse_query(request, CallQuery)
    f = CallFilter(lead_id=q.lead_id, campaign_id=q.campaign_id, status=q.status)
    async with app_state(request).sessions() as session:
        rows = await queries.list_calls(session, f, limit=q.limit, offset=q.offset)
    return JSONResponse(
        {"items": [call_json(c) for c in rows], "limit": q.limit, "offset": q.offset}
    )


@operation(
    summary="Get a call with its turns",
    tags=("calls",),
    description="Transcript turns with their latency breakdown (ms).",
    path=CallPath,
    replies=(Returns(200, CallDetail),),
    errors=(404, 422),
)
async def read_call(request: Request) -> Response:
    call_id = parse_path(request, CallPath).call_id
    async with app_state(request).sessions() as session:
        call = await queries.call_with_turns(session, call_id)
        if call is None:
            raise NotFoundError(f"call {call_id} not found")
        return JSONResponse(call_json(call, with_turns=True))


@operation(
    summary="Download a call's recording",
    tags=("calls",),
    description="The stereo WAV (8 kHz, 16-bit; left: the caller, right: the agent) of a "
    "call whose campaign records; 404 when there is none (not recorded, or past the "
    "retention period). A single `Range: bytes=` span (an audio element seeking) "
    "answers 206 with that span; one starting past the end, 416.",
    path=CallPath,
    replies=(Returns(200, media_type=WAV_CONTENT_TYPE, description="audio/wav"),),
    errors=(404, 422, 503),
)
async def read_recording(request: Request) -> Response:
    call_id = parse_path(request, CallPath).call_id
    state = app_state(request)
    async with state.sessions() as session:
        call = await session.get(Call, call_id)
        key = call.recording_key if call is not None else None
    data = await store_of(state).load(key) if key else None
    if data is None:
        raise NotFoundError(f"call {call_id} has no recording")
    headers = {
        "Content-Disposition": f'attachment; filename="call-{call_id}.wav"',
        "Accept-Ranges": "bytes",
    }
    wanted = byte_range(request.headers.get("range"), len(data))
    if wanted is UNSATISFIABLE:
        headers["Content-Range"] = f"bytes */{len(data)}"
        return Response(status_code=416, headers=headers)
    if isinstance(wanted, tuple):
        first, last = wanted
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return Response(
            data[first : last + 1], status_code=206, media_type=WAV_CONTENT_TYPE, headers=headers
        )
    return Response(data, media_type=WAV_CONTENT_TYPE, headers=headers)


UNSATISFIABLE = object()
"""What :func:`byte_range` answers for a range that starts past the end (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | object | None:
    """The one ``Range: bytes=`` span an audio element asks for, as inclusive
    ``(first, last)`` byte offsets into ``size`` bytes (RFC 9110 section 14).

    None when there is no header or it is not one readable byte range (several ranges,
    another unit, garbage): the whole body is sent, which the RFC allows.
    :data:`UNSATISFIABLE` when the range starts at or past ``size``.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    start, dash, end = spec.strip().partition("-")
    if not dash or not (start + end).isdigit() or not (start.isdigit() or end.isdigit()):
        return None
    if not start:  # a suffix: the last `end` bytes
        if int(end) == 0:
            return UNSATISFIABLE
        return max(size - int(end), 0), size - 1
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    if first >= size:
        return UNSATISFIABLE
    if last < first:
        return None
    return first, last


routes = [
    Route("/calls", list_calls, methods=["GET"]),
    Route("/calls/{call_id:int}", read_call, methods=["GET"]),
    Route("/calls/{call_id:int}/recording", read_recording, methods=["GET"]),
]
