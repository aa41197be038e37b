"""Calls: list and get with turns (transcript and latency breakdown)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import int_param
from voicebot.api.leads import page_params
from voicebot.api.schemas import iso
from voicebot.api.state import app_state
from voicebot.db.models import Call
from voicebot.errors import InvalidInputError, NotFoundError


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


async def list_calls(request: Request) -> Response:
    limit, offset = page_params(request)
    stmt = select(Call).order_by(Call.id.desc())
    for name, column in (("lead_id", Call.lead_id), ("campaign_id", Call.campaign_id)):
        if raw := request.query_params.get(name):
            if not raw.isdigit():
                raise InvalidInputError(f"{name} must be an integer")
            stmt = stmt.where(column == int(raw))
    if status := request.query_params.get("status"):
        stmt = stmt.where(Call.status == status)
    async with app_state(request).sessions() as session:
        rows = (await session.scalars(stmt.limit(limit).offset(offset))).all()
    return JSONResponse({"items": [call_json(c) for c in rows], "limit": limit, "offset": offset})


async def read_call(request: Request) -> Response:
    call_id = int_param(request, "call_id")
    async with app_state(request).sessions() as session:
        stmt = select(Call).where(Call.id == call_id).options(selectinload(Call.turns))
        call = (await session.scalars(stmt)).first()
        if call is None:
            raise NotFoundError(f"call {call_id} not found")
        return JSONResponse(call_json(call, with_turns=True))


routes = [
    Route("/calls", list_calls, methods=["GET"]),
    Route("/calls/{call_id:int}", read_call, methods=["GET"]),
]
