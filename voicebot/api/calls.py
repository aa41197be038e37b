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


routes = [
    Route("/calls", list_calls, methods=["GET"]),
    Route("/calls/{call_id:int}", read_call, methods=["GET"]),
]
