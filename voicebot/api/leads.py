"""Leads: create, list with filters and pagination, get, update, delete, CSV import."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import parse_body, parse_path, parse_query
from voicebot.api.lead_csv import parse_lead_csv
from voicebot.api.lead_import import import_leads as import_lead_rows
from voicebot.api.schemas import (
    ImportReport,
    LeadIn,
    LeadOut,
    LeadPage,
    LeadPatch,
    LeadPath,
    LeadQuery,
    Page,
    Query,
    iso,
)
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.db import queries
from voicebot.db.models import Lead, LeadStatus
from voicebot.errors import ConflictError, InvalidInputError, NotFoundError

MAX_MAPPING_CHARS = 2000


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
        "custom_fields": dict(lead.custom_fields or {}),
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
    if q.status:
        _check_status(q.status)
    stmt = queries.leads_select(status=q.status, company=q.company, search=q.q)
    tag = q.tag
    async with app_state(request).sessions() as session:
        if tag:  # JSON containment differs per backend; filter the (short) tag lists here
            rows = [r for r in (await session.scalars(stmt)).all() if tag in r.tags]
            total, items = len(rows), rows[offset : offset + limit]
        else:
            total = int(
                await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            )
            items = list((await session.scalars(stmt.limit(limit).offset(offset))).all())
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


class ImportQuery(Query):
    mapping: str | None = Field(
        default=None,
        max_length=MAX_MAPPING_CHARS,
        description='JSON object lead field → column name, e.g. {"phone": "מספר"}',
    )


class CsvBody(BaseModel):
    """Documentation only: the body is CSV text with a header row."""

    model_config = ConfigDict(
        json_schema_extra={
            "type": "string",
            "examples": ["טלפון,שם,חברה,עיר\n054-456-7890,דנה,מספרת דנה,חיפה\n"],
        }
    )


@operation(
    summary="Import leads from CSV",
    tags=("leads",),
    description="The file as the body, or a multipart/form-data upload with a `file` part "
    "(and an optional `mapping` field). UTF-8 (with or without BOM), UTF-16 and "
    "Windows-1255 are detected; `,` `;` tab `|` sniffed; Hebrew or English headers with "
    "common synonyms (טלפון/נייד/פלאפון/Phone/Mobile/Cell, שם/שם מלא/Name or First+Last, "
    "חברה/Company, אימייל/מייל/Email, תגיות, הערות); other columns are kept as "
    "custom_fields. Each row is all-or-nothing; the report lists failed rows and rows "
    "imported with a warning (a possible but unassigned phone number).",
    query=ImportQuery,
    body=CsvBody,
    body_media_type="text/csv",
    replies=(Returns(200, ImportReport),),
)
async def import_leads(request: Request) -> Response:
    """CSV as the body (any content type) or as a multipart upload (the first file part).

    The optional column mapping is a JSON object ``{"phone": "מספר", ...}`` in the
    ``mapping`` query parameter or form field. The report is the one ``voicebot
    import-leads`` prints (see :func:`voicebot.api.lead_import.import_leads`).
    """
    mapping_text = parse_query(request, ImportQuery).mapping
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        raw, form_mapping = await _multipart_csv(request)
        mapping_text = form_mapping or mapping_text
    else:
        raw = await request.body()
    parsed = parse_lead_csv(raw, _mapping_param(mapping_text))
    async with app_state(request).sessions() as session:
        report = await import_lead_rows(session, parsed)
    return JSONResponse(report, status_code=200)


async def _multipart_csv(request: Request) -> tuple[bytes, str | None]:
    try:
        form = await request.form()
    except (MultiPartException, ValueError) as exc:
        raise InvalidInputError(
            "malformed multipart upload", details=[{"field": "file", "message": str(exc)}]
        ) from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise InvalidInputError(
                "multipart upload without a file part",
                details=[{"field": "file", "message": "send the CSV as a file field named 'file'"}],
            )
        mapping = form.get("mapping")
        return await upload.read(), mapping if isinstance(mapping, str) else None
    finally:
        await form.close()


def _mapping_param(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            "mapping must be a JSON object", details=[{"field": "mapping", "message": str(exc)}]
        ) from exc
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise InvalidInputError(
            "mapping must be a JSON object of field → column name",
            details=[{"field": "mapping", "message": 'e.g. {"phone": "מספר"}'}],
        )
    return mapping


routes = [
    Route("/leads", create_lead, methods=["POST"]),
    Route("/leads", list_leads, methods=["GET"]),
    Route("/leads/import", import_leads, methods=["POST"]),
    Route("/leads/{lead_id:int}", read_lead, methods=["GET"]),
    Route("/leads/{lead_id:int}", update_lead, methods=["PATCH", "PUT"]),
    Route("/leads/{lead_id:int}", delete_lead, methods=["DELETE"]),
]
