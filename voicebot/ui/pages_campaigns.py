"""Console pages for campaigns: list with live progress, create and edit, script preview
(text and audio), CSV upload with a column-mapping preview and its per-row report, and
the start / pause / resume / cancel actions.

Validation, status changes, adding members and the CSV import are the REST API's own
functions (:mod:`voicebot.api.campaigns`, :mod:`voicebot.api.lead_csv`,
:mod:`voicebot.api.lead_import`); this module only turns forms into their inputs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from voicebot.api.campaigns import (
    TRANSITIONS,
    add_members,
    campaign_json,
    change_status,
    edit_campaign,
    validate_campaign,
)
from voicebot.api.lead_csv import LEAD_FIELDS, parse_lead_csv
from voicebot.api.lead_import import import_leads
from voicebot.api.schemas import CampaignIn
from voicebot.api.scripts import preview_lines
from voicebot.api.state import app_state
from voicebot.db.models import Campaign, CampaignStatus, Lead
from voicebot.db.scripts import script_or_neutral
from voicebot.db.types import utcnow
from voicebot.errors import (
    ConflictError,
    InvalidInputError,
    InvalidStateError,
    ProviderError,
    VoicebotError,
)
from voicebot.jobs.campaign_status import campaign_snapshot, campaign_snapshots
from voicebot.say import say
from voicebot.ui.messages import DEFAULT_LANGUAGE, translate
from voicebot.ui.render import page

SCRIPT_FIELDS = ("agent_name", "company", "offer", "greeting", "voicemail", "meeting_purpose")
WEEK_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
ACTIONS = ("start", "pause", "resume", "cancel")
"""In the order shown; each only where TRANSITIONS allows it from the current status."""
ENDED_STATUSES = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED})
CSV_PREVIEW_ROWS = 5
SPOKEN_LINES = ("greeting", "pitch", "price", "voicemail")
CAMPAIGNS_LISTED = 200


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def campaign_input(form: FormData, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The create/edit form as a :class:`CampaignIn` body; ``base`` (the stored
    campaign) supplies what the form leaves out."""
    data: dict[str, Any] = dict(base or {})
    script: dict[str, Any] = dict(data.get("agent_script") or {})
    for name in SCRIPT_FIELDS:
        value = _text(form, f"script_{name}")
        if value:
            script[name] = value
        else:
            script.pop(name, None)
    length = _text(form, "script_meeting_length_min")
    if length:
        script["meeting_length_min"] = int(length) if length.isdigit() else length
    data["agent_script"] = script
    for name in ("name", "window_start", "window_end", "calendar", "timezone"):
        value = _text(form, name)
        if value:
            data[name] = value
    for name in ("max_concurrent_calls", "max_attempts", "calls_per_second"):
        value = _text(form, name)
        if value:
            data[name] = value
    days = [d for d in WEEK_DAYS if form.get(f"day_{d}")]
    if days or "days_present" in form:
        data["window_days"] = ",".join(days)
    if "consent_present" in form:
        data["consent_required"] = bool(form.get("consent_required"))
    if "record_present" in form:
        data["record"] = bool(form.get("record"))
    return data


def _problems(exc: Exception) -> list[dict[str, str]]:
    if isinstance(exc, ValidationError):
        return [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
    if isinstance(exc, VoicebotError):
        details = exc.details if isinstance(exc.details, list) else []
        return details or [{"field": "", "message": exc.message}]
    return [{"field": "", "message": str(exc)}]


def _form_context(campaign: dict[str, Any]) -> dict[str, Any]:
    days = set(str(campaign.get("window_days", "")).split(","))
    return {"c": campaign, "days": days, "week_days": WEEK_DAYS, "script_fields": SCRIPT_FIELDS}


async def campaigns_list(request: Request) -> Response:
    return page(request, "campaigns.html", {"rows": await _progress_rows(request)})


async def progress_fragment(request: Request) -> Response:
    return page(request, "campaign_rows.html", {"rows": await _progress_rows(request)})


async def _progress_rows(request: Request) -> list[Any]:
    state = app_state(request)
    now = utcnow()
    async with state.sessions() as session:
        ids = (
            await session.scalars(
                select(Campaign.id).order_by(Campaign.id.desc()).limit(CAMPAIGNS_LISTED)
            )
        ).all()
        return await campaign_snapshots(session, ids, now=now)


async def new_form(request: Request) -> Response:
    defaults = CampaignIn(name="-").model_dump(mode="json") | {"name": ""}
    return page(request, "campaign_form.html", _form_context(defaults) | {"action": "create"})


async def create(request: Request) -> Response:
    form = await request.form()
    data = campaign_input(form)
    try:
        body = CampaignIn.model_validate(data)
        validate_campaign(body)
    except (ValidationError, InvalidInputError) as exc:
        context = _form_context(data) | {"action": "create", "errors": _problems(exc)}
        return page(request, "campaign_form.html", context, status_code=422)
    async with app_state(request).sessions() as session:
        campaign = Campaign(**body.model_dump(mode="json"))
        session.add(campaign)
        await session.commit()
        campaign_id = campaign.id
    return RedirectResponse(f"/ui/campaigns/{campaign_id}", 303)


async def _load(request: Request) -> dict[str, Any] | None:
    campaign_id = int(request.path_params["campaign_id"])
    async with app_state(request).sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        return None if campaign is None else campaign_json(campaign)


async def detail(request: Request, extra: dict[str, Any] | None = None) -> Response:
    campaign = await _load(request)
    if campaign is None:
        return page(request, "not_found.html", status_code=404)
    async with app_state(request).sessions() as session:
        snapshot = await campaign_snapshot(session, campaign["id"], now=utcnow())
    context = _form_context(campaign) | {
        "action": "edit",
        "snap": snapshot,
        "editable": campaign["status"] not in ENDED_STATUSES,
        "actions": [a for a in ACTIONS if campaign["status"] in TRANSITIONS[a][0]],
        "lead_fields": (*LEAD_FIELDS, "custom"),
    }
    context.update(extra or {})
    return page(request, "campaign.html", context, status_code=context.pop("status_code", 200))


async def progress_one(request: Request) -> Response:
    campaign_id = int(request.path_params["campaign_id"])
    async with app_state(request).sessions() as session:
        snapshot = await campaign_snapshot(session, campaign_id, now=utcnow())
    return page(request, "campaign_progress.html", {"snap": snapshot})


async def save(request: Request) -> Response:
    """The edit form through the API's own edit (PATCH's validation and status rules: a
    running campaign takes pacing and retry changes, the rest needs a pause)."""
    stored = await _load(request)
    if stored is None:
        return page(request, "not_found.html", status_code=404)
    form = await request.form()
    base = {k: v for k, v in stored.items() if k in CampaignIn.model_fields}
    given = campaign_input(form, base)
    try:
        async with app_state(request).sessions() as session:
            await edit_campaign(session, stored["id"], given)
    except VoicebotError as exc:
        status = 409 if isinstance(exc, ConflictError) else 422
        errors = _problems(exc)
        if isinstance(exc, InvalidStateError):
            errors = _pause_first(errors)
        return await detail(request, {"errors": errors, "status_code": status})
    return RedirectResponse(f"/ui/campaigns/{stored['id']}", 303)


RUNNING_REFUSAL = "cannot change while running"
"""The API's per-field message for a field a running campaign does not take."""


def _pause_first(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    """The API's "cannot change while running" problems as the console says them: each
    field by its form label, and that the campaign must be paused first."""
    language = DEFAULT_LANGUAGE
    message = translate(language, "campaign.pause_first")
    said = []
    for problem in problems:
        if problem["message"] != RUNNING_REFUSAL:  # another refusal (an ended campaign)
            said.append(problem)
            continue
        label_id = (
            "campaign.script"
            if problem["field"] == "agent_script"
            else (f"campaign.{problem['field']}")
        )
        label = translate(language, label_id)
        said.append({"field": problem["field"] if label == label_id else label, "message": message})
    return said


async def act(request: Request) -> Response:
    campaign_id = int(request.path_params["campaign_id"])
    action = request.path_params["action"]
    try:
        await change_status(app_state(request), campaign_id, action)
    except VoicebotError as exc:
        return await detail(request, {"errors": _problems(exc), "status_code": 409})
    return RedirectResponse(f"/ui/campaigns/{campaign_id}", 303)


async def preview(request: Request) -> Response:
    campaign = await _load(request)
    if campaign is None:
        return page(request, "not_found.html", status_code=404)
    script = script_or_neutral(campaign["agent_script"], campaign_id=campaign["id"])
    lines = preview_lines(script, request.query_params.get("lead_name") or None)
    context = {"lines": lines.model_dump(), "campaign_id": campaign["id"], "names": SPOKEN_LINES}
    return page(request, "campaign_preview.html", context)


async def preview_audio(request: Request) -> Response:
    """One preview line synthesized by the engine a call uses (``voicebot say``'s)."""
    campaign = await _load(request)
    line = request.query_params.get("line", "greeting")
    if campaign is None or line not in SPOKEN_LINES:
        return Response(status_code=404)
    script = script_or_neutral(campaign["agent_script"], campaign_id=campaign["id"])
    text = getattr(preview_lines(script), line)
    with tempfile.TemporaryDirectory(prefix="voicebot-say-") as folder:
        wav = Path(folder) / "line.wav"
        try:
            await say(app_state(request).settings, text, wav_path=wav)
        except ProviderError as exc:
            return Response(exc.message, status_code=503, media_type="text/plain")
        audio = wav.read_bytes()  # a few hundred KiB at most, in a temporary folder
    return Response(audio, media_type="audio/wav", headers={"Cache-Control": "no-store"})


async def _csv_upload(request: Request) -> tuple[bytes, dict[str, str], FormData]:
    form = await request.form(max_part_size=app_state(request).settings.max_import_bytes)
    upload = form.get("file")
    raw = await upload.read() if isinstance(upload, UploadFile) else b""
    # The form maps each column (``map:<header>``) to a field; the parser takes field → header.
    mapping = {
        value: key.removeprefix("map:")
        for key, value in form.multi_items()
        if key.startswith("map:") and isinstance(value, str) and value in LEAD_FIELDS
    }
    return raw, mapping, form


async def csv_preview(request: Request) -> Response:
    """The file's columns with the field each maps to (editable) and its first rows."""
    raw, mapping, _ = await _csv_upload(request)
    try:
        parsed = parse_lead_csv(raw, mapping or None)
        rows = []
        for row in parsed.rows():
            rows.append(row)
            if len(rows) >= CSV_PREVIEW_ROWS:
                break
    except InvalidInputError as exc:
        return page(request, "csv_preview.html", {"errors": _problems(exc)}, status_code=422)
    context = {
        "columns": parsed.columns,
        "rows": rows,
        "encoding": parsed.encoding,
        "lead_fields": (*LEAD_FIELDS, "custom"),
    }
    return page(request, "csv_preview.html", context)


async def csv_import(request: Request) -> Response:
    """Import the file's leads (the API's importer) and add them to the campaign."""
    campaign_id = int(request.path_params["campaign_id"])
    raw, mapping, _ = await _csv_upload(request)
    state = app_state(request)
    try:
        parsed = parse_lead_csv(raw, mapping or None)
        phones: list[str] = []
        async with state.sessions() as session:
            report = await import_leads(session, parsed, created_phones=phones)
            ids = list((await session.scalars(select(Lead.id).where(Lead.phone.in_(phones)))).all())
            added = await add_members(session, campaign_id, lead_ids=ids) if ids else None
    except VoicebotError as exc:
        return page(request, "csv_report.html", {"errors": _problems(exc)}, status_code=422)
    context = {"report": report, "added": (added or {}).get("added", 0)}
    return page(request, "csv_report.html", context)


routes = [
    Route("/campaigns", campaigns_list, methods=["GET"]),
    Route("/campaigns/progress", progress_fragment, methods=["GET"]),
    Route("/campaigns/new", new_form, methods=["GET"]),
    Route("/campaigns/new", create, methods=["POST"]),
    Route("/campaigns/{campaign_id:rowid}", detail, methods=["GET"]),
    Route("/campaigns/{campaign_id:rowid}", save, methods=["POST"]),
    Route("/campaigns/{campaign_id:rowid}/progress", progress_one, methods=["GET"]),
    Route("/campaigns/{campaign_id:rowid}/preview", preview, methods=["GET"]),
    Route("/campaigns/{campaign_id:rowid}/preview.wav", preview_audio, methods=["GET"]),
    Route("/campaigns/{campaign_id:rowid}/csv/preview", csv_preview, methods=["POST"]),
    Route("/campaigns/{campaign_id:rowid}/csv/import", csv_import, methods=["POST"]),
    Route("/campaigns/{campaign_id:rowid}/{action}", act, methods=["POST"]),
]
