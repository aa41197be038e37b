"""Leads: create, list with filters and pagination, get, update, delete, CSV import."""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_body, parse_path, parse_query
from voicebot.api.errors import validation_details
from voicebot.api.schemas import (
    ImportReport,
    LeadIn,
    LeadOut,
    LeadPage,
    LeadPatch,
    LeadPath,
    LeadQuery,
    Page,
    iso,
)
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.db.models import Lead, LeadStatus
from voicebot.errors import ConflictError, InvalidInputError, NotFoundError

CSV_MAX_ROWS = 50_000


def lead_json(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "phone": lead.phone,
        "name": lead.name,
        "company": lead.company,
        "email": lead.email,
        "status": lead.status,
        "consent_source": lead.consent_source,
        "consent_at": iso(lead.consent_at),
        "tags": list(lead.tags or []),
        "notes": lead.notes,
        "attempts": lead.attempts,
        "created_at": iso(lead.created_at),
        "updated_at": iso(lead.updated_at),
    }


def page_params(request: Request) -> tuple[int, int]:
    """``limit`` and ``offset`` of a list route (422 when out of range)."""
    page = parse_query(request, Page)
    return page.limit, page.offset


async def get_lead(session: AsyncSession, lead_id: int) -> Lead:
    lead = await session.get(Lead, lead_id)
    if lead is None:
        raise NotFoundError(f"lead {lead_id} not found")
    return lead


def _check_status(status: str | None) -> None:
    if status is not None and status not in set(LeadStatus):
        raise InvalidInputError(
            "unknown lead status",
            details=[{"field": "status", "message": f"one of {sorted(LeadStatus)}"}],
        )


@operation(
    summary="Create a lead",
    tags=("leads",),
    body=LeadIn,
    replies=(Returns(201, LeadOut),),
    errors=(409, 422),
)
async def create_lead(request: Request) -> Response:
    data = await parse_body(request, LeadIn)
    async with app_state(request).sessions() as session:
        lead = Lead(**data.model_dump())
        session.add(lead)
        try:
            await session.commit()
        except IntegrityError as exc:
            raise ConflictError("a lead with this phone already exists") from exc
        return JSONResponse(lead_json(lead), status_code=201)


@operation(
    summary="List leads",
    tags=("leads",),
    description="Filters by status, tag, company and a name search; paginated.",
    query=LeadQuery,
    replies=(Returns(200, LeadPage),),
)
async def list_leads(request: Request) -> Response:
    q = parse_query(request, LeadQuery)
    limit, offset = q.limit, q.offset
    stmt = select(Lead)
    if status := q.status:
        _check_status(status)
        stmt = stmt.where(Lead.status == status)
    if company := q.company:
        stmt = stmt.where(Lead.company == company)
    if search := q.q:
        stmt = stmt.where(Lead.name.ilike(f"%{search}%"))
    tag = q.tag
    async with app_state(request).sessions() as session:
        if tag:  # JSON containment differs per backend; filter the (short) tag lists here
            rows = [
                r for r in (await session.scalars(stmt.order_by(Lead.id))).all() if tag in r.tags
            ]
            total, items = len(rows), rows[offset : offset + limit]
        else:
            total = int(
                await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            )
            items = list(
                (await session.scalars(stmt.order_by(Lead.id).limit(limit).offset(offset))).all()
            )
    return JSONResponse(
        {"items": [lead_json(r) for r in items], "total": total, "limit": limit, "offset": offset}
    )


@operation(
    summary="Get a lead",
    tags=("leads",),
    path=LeadPath,
    replies=(Returns(200, LeadOut),),
    errors=(404, 422),
)
async def read_lead(request: Request) -> Response:
    lead_id = parse_path(request, LeadPath).lead_id
    async with app_state(request).sessions() as session:
        return JSONResponse(lead_json(await get_lead(session, lead_id)))


@operation(
    summary="Update a lead",
    tags=("leads",),
    path=LeadPath,
    body=LeadPatch,
    replies=(Returns(200, LeadOut),),
    errors=(404, 409, 422),
)
async def update_lead(request: Request) -> Response:
    lead_id = parse_path(request, LeadPath).lead_id
    patch = await parse_body(request, LeadPatch)
    _check_status(patch.status)
    async with app_state(request).sessions() as session:
        lead = await get_lead(session, lead_id)
        for key, value in patch.model_dump(exclude_unset=True).items():
            setattr(lead, key, value)
        try:
            await session.commit()
        except IntegrityError as exc:
            raise ConflictError("a lead with this phone already exists") from exc
        await session.refresh(lead)
        return JSONResponse(lead_json(lead))


@operation(
    summary="Delete a lead",
    tags=("leads",),
    path=LeadPath,
    replies=(Returns(204),),
    errors=(404, 422),
)
async def delete_lead(request: Request) -> Response:
    lead_id = parse_path(request, LeadPath).lead_id
    async with app_state(request).sessions() as session:
        lead = await get_lead(session, lead_id)
        await session.delete(lead)
        await session.commit()
    return Response(status_code=204)


async def import_leads_csv(session: AsyncSession, text: str) -> dict[str, Any]:
    """Import rows (phone,name,company,email,tags,notes); each row is all-or-nothing."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "phone" not in [f.strip() for f in reader.fieldnames]:
        raise InvalidInputError(
            "CSV needs a header row with a 'phone' column",
            details=[{"field": "file", "message": "missing phone column"}],
        )
    created = 0
    errors: list[dict[str, Any]] = []
    for line_no, row in enumerate(reader, start=2):
        if line_no > CSV_MAX_ROWS + 1:
            errors.append({"row": line_no, "errors": [{"message": "row limit reached"}]})
            break
        clean = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        payload: dict[str, Any] = {k: v for k, v in clean.items() if v and k in LeadIn.model_fields}
        if "tags" in payload:
            payload["tags"] = [t.strip() for t in payload["tags"].split(";") if t.strip()]
        try:
            data = LeadIn.model_validate(payload)
        except ValidationError as exc:
            errors.append({"row": line_no, "errors": validation_details(exc)})
            continue
        try:
            async with session.begin_nested():
                session.add(Lead(**data.model_dump()))
        except IntegrityError:
            errors.append(
                {"row": line_no, "errors": [{"field": "phone", "message": "duplicate phone"}]}
            )
            continue
        created += 1
    await session.commit()
    return {"created": created, "failed": len(errors), "errors": errors}


class CsvBody(BaseModel):
    """Documentation only: the body is CSV text with a header row."""

    model_config = ConfigDict(
        json_schema_extra={
            "type": "string",
            "examples": ["phone,name,company,email,tags,notes\n054-456-7890,דנה,,,vip;new,\n"],
        }
    )


@operation(
    summary="Import leads from CSV",
    tags=("leads",),
    description="Columns phone,name,company,email,tags(;-separated),notes; each row is "
    "all-or-nothing and the report lists the rows that failed.",
    body=CsvBody,
    body_media_type="text/csv",
    replies=(Returns(200, ImportReport),),
)
async def import_leads(request: Request) -> Response:
    raw = await request.body()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError("CSV must be UTF-8") from exc
    async with app_state(request).sessions() as session:
        report = await import_leads_csv(session, text)
    return JSONResponse(report, status_code=200)


routes = [
    Route("/leads", create_lead, methods=["POST"]),
    Route("/leads", list_leads, methods=["GET"]),
    Route("/leads/import", import_leads, methods=["POST"]),
    Route("/leads/{lead_id:int}", read_lead, methods=["GET"]),
    Route("/leads/{lead_id:int}", update_lead, methods=["PATCH", "PUT"]),
    Route("/leads/{lead_id:int}", delete_lead, methods=["DELETE"]),
]
