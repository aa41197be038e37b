"""Do-not-call list: add, list, remove. A listed number is never dialled."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_body, parse_path, parse_query
from voicebot.api.phones import normalize_phone
from voicebot.api.schemas import DncIn, DncOut, DncPage, DncPath, Page, iso
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.config import Settings
from voicebot.db.models import DoNotCall, Lead, LeadStatus
from voicebot.errors import ConflictError, InvalidInputError, NotFoundError
from voicebot.webhooks.events import emit_opted_out


def dnc_json(entry: DoNotCall) -> dict[str, Any]:
    return {
        "id": entry.id,
        "phone": entry.phone,
        "reason": entry.reason,
        "source": entry.source,
        "created_at": iso(entry.created_at),
    }


@operation(
    summary="Add a number to do-not-call",
    tags=("do-not-call",),
    description="Also marks a lead with this number do_not_call.",
    body=DncIn,
    replies=(Returns(201, DncOut),),
    errors=(409, 422),
)
async def add_dnc(request: Request) -> Response:
    data = await parse_body(request, DncIn)
    state = app_state(request)
    async with state.sessions() as session:
        entry = await add_to_dnc(
            session, data.phone, reason=data.reason, source="api", settings=state.settings
        )
        return JSONResponse(dnc_json(entry), status_code=201)


async def add_to_dnc(
    session: AsyncSession,
    phone: str,
    *,
    reason: str | None,
    source: str,
    settings: Settings,
) -> DoNotCall:
    """Put ``phone`` (E.164) on the list, mark its lead do_not_call, commit; the
    ``lead.opted_out`` webhook event goes in the same transaction (every door onto the
    list reports it: API, console, a call).
    Raises ConflictError when it is on the list already."""
    entry = DoNotCall(phone=phone, reason=reason, source=source)
    await session.execute(
        update(Lead).where(Lead.phone == phone).values(status=LeadStatus.DO_NOT_CALL)
    )
    # before the entry is added: a duplicate fails at the commit
    lead = (await session.scalars(select(Lead).where(Lead.phone == phone))).first()
    await emit_opted_out(session, settings, phone, lead, source=source)
    session.add(entry)
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise ConflictError("phone is already on the do-not-call list") from exc
    return entry


async def remove_from_dnc(session: AsyncSession, phone: str) -> None:
    """Take ``phone`` off the list and commit. Raises NotFoundError when it is not on it."""
    entry = (await session.scalars(select(DoNotCall).where(DoNotCall.phone == phone))).first()
    if entry is None:
        raise NotFoundError("phone is not on the do-not-call list")
    await session.delete(entry)
    await session.commit()


@operation(
    summary="List do-not-call entries",
    tags=("do-not-call",),
    query=Page,
    replies=(Returns(200, DncPage),),
)
async def list_dnc(request: Request) -> Response:
    page = parse_query(request, Page)
    limit, offset = page.limit, page.offset
    async with app_state(request).sessions() as session:
        rows = (
            await session.scalars(
                select(DoNotCall).order_by(DoNotCall.id).limit(limit).offset(offset)
            )
        ).all()
    return JSONResponse({"items": [dnc_json(r) for r in rows], "limit": limit, "offset": offset})


@operation(
    summary="Remove a number from do-not-call",
    tags=("do-not-call",),
    path=DncPath,
    replies=(Returns(204),),
    errors=(404, 422),
)
async def remove_dnc(request: Request) -> Response:
    try:
        phone = normalize_phone(parse_path(request, DncPath).phone)
    except ValueError as exc:
        raise InvalidInputError(
            "invalid phone", details=[{"field": "phone", "message": str(exc)}]
        ) from exc
    async with app_state(request).sessions() as session:
        await remove_from_dnc(session, phone)
    return Response(status_code=204)


routes = [
    Route("/do-not-call", add_dnc, methods=["POST"]),
    Route("/do-not-call", list_dnc, methods=["GET"]),
    Route("/do-not-call/{phone}", remove_dnc, methods=["DELETE"]),
]
