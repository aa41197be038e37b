"""Do-not-call list: add, list, remove. A listed number is never dialled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_body
from voicebot.api.leads import page_params
from voicebot.api.phones import normalize_phone
from voicebot.api.schemas import DncIn, iso
from voicebot.api.state import app_state
from voicebot.db.models import DoNotCall, Lead, LeadStatus
from voicebot.errors import ConflictError, InvalidInputError, NotFoundError


def dnc_json(entry: DoNotCall) -> dict[str, Any]:
    return {
        "id": entry.id,
        "phone": entry.phone,
        "reason": entry.reason,
        "source": entry.source,
        "created_at": iso(entry.created_at),
    }


async def add_dnc(request: Request) -> Response:
    data = await parse_body(request, DncIn)
    async with app_state(request).sessions() as session:
        entry = DoNotCall(phone=data.phone, reason=data.reason, source="api")
        await session.execute(
            update(Lead).where(Lead.phone == data.phone).values(status=LeadStatus.DO_NOT_CALL)
        )
        session.add(entry)
        try:
            await session.commit()
        except IntegrityError as exc:
            raise ConflictError("phone is already on the do-not-call list") from exc
        return JSONResponse(dnc_json(entry), status_code=201)


async def list_dnc(request: Request) -> Response:
    limit, offset = page_params(request)
    async with app_state(request).sessions() as session:
        rows = (
            await session.scalars(
                select(DoNotCall).order_by(DoNotCall.id).limit(limit).offset(offset)
            )
        ).all()
    return JSONResponse({"items": [dnc_json(r) for r in rows], "limit": limit, "offset": offset})


async def remove_dnc(request: Request) -> Response:
    try:
        phone = normalize_phone(request.path_params["phone"])
    except ValueError as exc:
        raise InvalidInputError(
            "invalid phone", details=[{"field": "phone", "message": str(exc)}]
        ) from exc
    async with app_state(request).sessions() as session:
        entry = (await session.scalars(select(DoNotCall).where(DoNotCall.phone == phone))).first()
        if entry is None:
            raise NotFoundError("phone is not on the do-not-call list")
        await session.delete(entry)
        await session.commit()
    return Response(status_code=204)


routes = [
    Route("/do-not-call", add_dnc, methods=["POST"]),
    Route("/do-not-call", list_dnc, methods=["GET"]),
    Route("/do-not-call/{phone}", remove_dnc, methods=["DELETE"]),
]
