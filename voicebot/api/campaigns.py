"""Campaigns: create, get, list, add leads, the status state machine, stats."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import int_param, parse_body, parse_model
from voicebot.api.leads import page_params
from voicebot.api.schemas import (
    CLEARABLE_FIELDS,
    RUNNING_EDITABLE_FIELDS,
    AddLeadsIn,
    AddLeadsOut,
    CampaignActionPath,
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignPatch,
    CampaignPath,
    CampaignStatsOut,
    Page,
    iso,
)
from voicebot.api.spec import Returns, operation
from voicebot.api.state import AppState, app_state
from voicebot.config import Settings
from voicebot.db.models import (
    LIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    DoNotCall,
    Lead,
    LeadStatus,
    MemberState,
)
from voicebot.db.scripts import script_from_stored
from voicebot.db.types import utcnow
from voicebot.errors import ConflictError, InvalidInputError, InvalidStateError, NotFoundError
from voicebot.jobs.actors import dialing_enabled
from voicebot.jobs.claims import cancel_pending, release_claimed
from voicebot.jobs.sweeper import hang_up_live
from voicebot.scheduling import WindowFieldError, parse_timezone, parse_window_times
from voicebot.telephony.rest import TwilioDialer
from voicebot.webhooks.events import EventType, emit_campaign

S = CampaignStatus
# action -> (allowed source states, target state)
TRANSITIONS: dict[str, tuple[frozenset[str], CampaignStatus]] = {
    "start": (frozenset({S.DRAFT}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "cancel": (frozenset({S.DRAFT, S.RUNNING, S.PAUSED}), S.CANCELLED),
}
STATUS_EVENTS: dict[str, EventType] = {
    S.RUNNING: EventType.CAMPAIGN_STARTED,
    S.PAUSED: EventType.CAMPAIGN_PAUSED,
    S.CANCELLED: EventType.CAMPAIGN_COMPLETED,  # its status field says cancelled
}
"""The webhook event of each status an operator moves a campaign to."""
UNCALLABLE_LEAD_STATUSES = frozenset({LeadStatus.DO_NOT_CALL, LeadStatus.WRONG_NUMBER})


def campaign_json(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "agent_script": c.agent_script,
        "max_concurrent_calls": c.max_concurrent_calls,
        "calls_per_second": c.calls_per_second,
        "max_attempts": c.max_attempts,
        "retry_base_min": c.retry_base_min,
        "retry_max_min": c.retry_max_min,
        "window_start": c.window_start,
        "window_end": c.window_end,
        "window_days": c.window_days,
        "timezone": c.timezone,
        "calendar": c.calendar,
        "blocked_dates": list(c.blocked_dates or []),
        "consent_required": c.consent_required,
        "voicemail_action": c.voicemail_action,
        "voicemail_retry": c.voicemail_retry,
        "webhook_url": c.webhook_url,
        "webhook_secret_set": bool(c.webhook_secret),
        "record": c.record,
        "eligibility_url": c.eligibility_url,
        "status_reason": c.status_reason,
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
        "created_at": iso(c.created_at),
    }


def validate_campaign(data: CampaignIn) -> None:
    """Raise InvalidInputError naming each field the model alone cannot check."""
    problems = []
    try:
        parse_timezone(data.timezone)
    except WindowFieldError as exc:
        problems.append({"field": exc.field, "message": exc.message})
    try:
        parse_window_times(data.window_start, data.window_end)
    except WindowFieldError as exc:
        problems.append({"field": exc.field, "message": exc.message})
    if data.retry_max_min < data.retry_base_min:
        problems.append(
            {
                "field": "retry_max_min",
                "message": f"{data.retry_max_min} must be at least retry_base_min "
                f"{data.retry_base_min}",
            }
        )
    problems.extend(_script_problems(data.agent_script))
    if problems:
        raise InvalidInputError("invalid campaign", details=problems)


def _script_problems(agent_script: dict[str, Any]) -> list[dict[str, str]]:
    """What is wrong with a campaign's agent script (overrides on the default script)."""
    try:
        script_from_stored(agent_script)
    except ValidationError as exc:
        return [
            {
                "field": ".".join(("agent_script", *(str(part) for part in error["loc"]))),
                "message": error["msg"],
            }
            for error in exc.errors(include_url=False, include_input=False)
        ]
    return []


async def _get(session: Any, campaign_id: int) -> Campaign:
    campaign: Campaign | None = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"campaign {campaign_id} not found")
    return campaign


@operation(
    summary="Create a campaign",
    tags=("campaigns",),
    body=CampaignIn,
    replies=(Returns(201, CampaignOut),),
)
async def create_campaign(request: Request) -> Response:
    data = await parse_body(request, CampaignIn)
    validate_campaign(data)
    async with app_state(request).sessions() as session:
        campaign = Campaign(**data.model_dump(mode="json"))
        session.add(campaign)
        await session.commit()
        return JSONResponse(campaign_json(campaign), status_code=201)


@operation(
    summary="List campaigns", tags=("campaigns",), query=Page, replies=(Returns(200, CampaignPage),)
)
async def list_campaigns(request: Request) -> Response:
    limit, offset = page_params(request)
    async with app_state(request).sessions() as session:
        rows = (
            await session.scalars(
                select(Campaign).order_by(Campaign.id).limit(limit).offset(offset)
            )
        ).all()
    return JSONResponse(
        {"items": [campaign_json(c) for c in rows], "limit": limit, "offset": offset}
    )


@operation(
    summary="Get a campaign",
    tags=("campaigns",),
    path=CampaignPath,
    replies=(Returns(200, CampaignOut),),
    errors=(404, 422),
)
async def read_campaign(request: Request) -> Response:
    async with app_state(request).sessions() as session:
        return JSONResponse(campaign_json(await _get(session, int_param(request, "campaign_id"))))


EDITABLE_STATUSES = frozenset({S.DRAFT, S.PAUSED})
"""States in which every field of a campaign may change."""


@operation(
    summary="Edit a campaign",
    tags=("campaigns",),
    description="Only the fields given change; the result is validated like a create. "
    "A draft or paused campaign takes any field. A running one takes only name, "
    "pacing (max_concurrent_calls, calls_per_second) and retry fields (max_attempts, "
    "retry_base_min, retry_max_min) and blocked_dates; the script, the window, the zone, "
    "the calendar, consent and voicemail fields need a pause first (409 naming them). "
    "A completed or cancelled campaign is not edited (409).",
    path=CampaignPath,
    body=CampaignPatch,
    replies=(Returns(200, CampaignOut),),
    errors=(404, 409, 422),
)
async def update_campaign(request: Request) -> Response:
    """Apply a partial edit with a compare-and-set on the status it was checked against.

    A field sent with its stored value is not a change, so a console may send the whole
    form of a running campaign. The status the edit was allowed in is part of the UPDATE,
    so a campaign started between the read and the write is not edited behind its back.
    """
    campaign_id = int_param(request, "campaign_id")
    patch = await parse_body(request, CampaignPatch)
    given = patch.model_dump(mode="json", exclude_unset=True)
    nulls = sorted(
        name for name, value in given.items() if value is None and name not in CLEARABLE_FIELDS
    )
    if nulls:
        raise InvalidInputError(
            "fields cannot be null",
            details=[{"field": name, "message": "cannot be null"} for name in nulls],
        )
    async with app_state(request).sessions() as session:
        campaign = await edit_campaign(session, campaign_id, given)
        return JSONResponse(campaign_json(campaign))


async def edit_campaign(session: AsyncSession, campaign_id: int, given: dict[str, Any]) -> Campaign:
    """Merge ``given`` (create fields) into the stored campaign, validate it like a create,
    and store what changed with a compare-and-set on the status; the campaign after.

    Raises NotFoundError, InvalidInputError and InvalidStateError (a field its status
    does not allow changing, or an ended campaign).
    """
    campaign = await _get(session, campaign_id)
    stored = _editable_fields(campaign)
    merged = parse_model(CampaignIn, stored | given)
    validate_campaign(merged)
    normalized = merged.model_dump(mode="json")
    changes = {name: normalized[name] for name in given if normalized[name] != stored[name]}
    allowed = _statuses_allowing(changes)
    if campaign.status not in allowed:
        raise _not_editable(campaign.status, changes)
    if changes:
        result = await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status.in_(allowed))
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            await session.rollback()
            campaign = await _get(session, campaign_id)
            await session.refresh(campaign)
            raise _not_editable(campaign.status, changes)
        await session.commit()
        await session.refresh(campaign)
    return campaign


def _editable_fields(campaign: Campaign) -> dict[str, Any]:
    """The stored campaign as the fields of a create (what an edit is merged into)."""
    stored = {name: getattr(campaign, name) for name in CampaignIn.model_fields}
    stored["agent_script"] = stored["agent_script"] or {}
    stored["blocked_dates"] = list(stored["blocked_dates"] or [])
    return stored


def _statuses_allowing(changes: dict[str, Any]) -> frozenset[str]:
    if set(changes) <= RUNNING_EDITABLE_FIELDS:
        return EDITABLE_STATUSES | {S.RUNNING}
    return EDITABLE_STATUSES


def _not_editable(status: str, changes: dict[str, Any]) -> InvalidStateError:
    if status == S.RUNNING:
        frozen = sorted(set(changes) - RUNNING_EDITABLE_FIELDS)
        return InvalidStateError(
            f"a running campaign cannot change {', '.join(frozen)}: pause it first",
            details=[{"field": name, "message": "cannot change while running"} for name in frozen],
        )
    return InvalidStateError(
        f"a {status} campaign cannot be edited",
        details=[{"field": name, "message": f"campaign is {status}"} for name in sorted(changes)],
    )


@operation(
    summary="Add leads by ids or by filter",
    tags=("campaigns",),
    description="Leads on do-not-call or marked wrong number are skipped.",
    path=CampaignPath,
    body=AddLeadsIn,
    replies=(Returns(200, AddLeadsOut),),
    errors=(404, 409, 422),
)
async def add_leads(request: Request) -> Response:
    data = await parse_body(request, AddLeadsIn)
    if data.lead_ids is None and data.status is None and data.tag is None:
        raise InvalidInputError(
            "give lead_ids or a filter", details=[{"field": "lead_ids", "message": "required"}]
        )
    async with app_state(request).sessions() as session:
        result = await add_members(
            session,
            int_param(request, "campaign_id"),
            lead_ids=data.lead_ids,
            status=data.status,
            tag=data.tag,
        )
    return JSONResponse(result)


async def add_members(
    session: AsyncSession,
    campaign_id: int,
    *,
    lead_ids: list[int] | None = None,
    status: str | None = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """Add the leads chosen by ids and/or filter to the campaign and commit; leads on
    do-not-call or marked wrong number are left out. Raises NotFoundError and
    InvalidStateError (an ended campaign)."""
    campaign = await _get(session, campaign_id)
    if campaign.status in (S.COMPLETED, S.CANCELLED):
        raise InvalidStateError(f"campaign is {campaign.status}")
    stmt = select(Lead).where(Lead.status.not_in(UNCALLABLE_LEAD_STATUSES))
    stmt = stmt.where(Lead.phone.not_in(select(DoNotCall.phone)))
    if lead_ids is not None:
        stmt = stmt.where(Lead.id.in_(lead_ids))
    if status is not None:
        stmt = stmt.where(Lead.status == status)
    leads = list((await session.scalars(stmt)).all())
    if tag is not None:
        leads = [lead for lead in leads if tag in (lead.tags or [])]
    existing = set(
        (
            await session.scalars(
                select(CampaignLead.lead_id).where(CampaignLead.campaign_id == campaign.id)
            )
        ).all()
    )
    added = 0
    for lead in leads:
        if lead.id not in existing:
            session.add(CampaignLead(campaign_id=campaign.id, lead_id=lead.id))
            added += 1
    await session.commit()
    missing = sorted(set(lead_ids or []) - {lead.id for lead in leads})
    return {"added": added, "already_member": len(leads) - added, "skipped": missing}


@operation(
    summary="Start, pause, resume or cancel a campaign",
    tags=("campaigns",),
    path=CampaignActionPath,
    replies=(Returns(200, CampaignOut),),
    errors=(404, 409, 422),
)
async def transition(request: Request) -> Response:
    """Move the campaign with an atomic compare-and-set on its status (no lost update).

    ``start`` is refused (409 naming what is missing) when the server cannot dial;
    ``pause`` gives back attempts not yet sent at once (a dial already paced and about
    to send checks the status in the same statement that wins the attempt); ``cancel``
    also ends pending members and hangs up live calls through the REST API.
    """
    body = await change_status(
        app_state(request), int_param(request, "campaign_id"), request.path_params["action"]
    )
    return JSONResponse(body)


async def change_status(state: AppState, campaign_id: int, action: str) -> dict[str, Any]:
    """Apply ``action`` (start, pause, resume, cancel) to the campaign; its JSON after.

    Raises NotFoundError (campaign or action), ConflictError (cannot dial) and
    InvalidStateError (not allowed from the current status).
    """
    if action not in TRANSITIONS:
        raise NotFoundError(f"unknown action {action!r}")
    allowed, target = TRANSITIONS[action]
    if target == S.RUNNING:
        missing = dialing_blockers(state.settings)
        if missing:
            raise ConflictError(
                "campaign cannot dial: " + "; ".join(missing),
                details=[{"field": name, "message": why} for name, why in missing.items()],
            )
    async with state.sessions() as session:
        current = await _get(session, campaign_id)
        values: dict[str, Any] = {"status": target}
        if action == "start":
            values["started_at"] = utcnow()
        if target == S.CANCELLED:
            values["finished_at"] = utcnow()
        if target in (S.RUNNING, S.CANCELLED):
            values["status_reason"] = None
        result = await session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status.in_(allowed))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            await session.rollback()
            current = await _get(session, campaign_id)
            await session.refresh(current)
            raise InvalidStateError(f"cannot {action} a {current.status} campaign")
        if target in (S.PAUSED, S.CANCELLED):
            await release_claimed(session, campaign_id, reason=f"campaign {target}")
        if target == S.CANCELLED:
            await cancel_pending(session, campaign_id)
        await emit_campaign(session, state.settings, STATUS_EVENTS[target], campaign_id)
        await session.commit()
        await session.refresh(current)
        body = campaign_json(current)
    jobs = state.extras["jobs"]
    if target == S.RUNNING:
        jobs.nudge(campaign_id)
    if target == S.CANCELLED and dialing_enabled(state.settings):
        twilio = TwilioDialer.from_settings(state.settings)
        try:
            body["hung_up"] = await hang_up_live(state.sessions, twilio, campaign_id)
        finally:
            twilio.close()
    return body


def dialing_blockers(settings: Settings) -> dict[str, str]:
    """What stops this server from dialing, by setting name (empty when it can dial).

    ``PUBLIC_BASE_URL`` must be reachable by Twilio: a loopback or private address is
    refused unless ``TWILIO_API_BASE_URL`` is itself on loopback (our simulator, which
    calls back on the same machine).
    """
    missing: dict[str, str] = {}
    if not dialing_enabled(settings):
        missing["TWILIO_ACCOUNT_SID"] = (
            "no Twilio account: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
        )
    if not settings.twilio_from_number:
        missing["TWILIO_FROM_NUMBER"] = "no caller number: set TWILIO_FROM_NUMBER"
    api_local = settings.twilio_api_base_url is not None and _is_local(settings.twilio_api_base_url)
    if _is_local(settings.public_base_url) and not api_local:
        missing["PUBLIC_BASE_URL"] = (
            f"{settings.public_base_url} is not reachable by Twilio: set a public https URL"
        )
    return missing


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


@operation(
    summary="Counts per membership state",
    tags=("campaigns",),
    path=CampaignPath,
    replies=(Returns(200, CampaignStatsOut),),
    errors=(404, 422),
)
async def stats(request: Request) -> Response:
    async with app_state(request).sessions() as session:
        campaign = await _get(session, int_param(request, "campaign_id"))
        rows = (
            await session.execute(
                select(CampaignLead.state, func.count())
                .where(CampaignLead.campaign_id == campaign.id)
                .group_by(CampaignLead.state)
            )
        ).all()
        attempts = (
            await session.execute(
                select(CampaignAttempt.status, func.count())
                .where(CampaignAttempt.campaign_id == campaign.id)
                .group_by(CampaignAttempt.status)
            )
        ).all()
        due = await session.scalar(
            select(func.count(CampaignLead.id)).where(
                CampaignLead.campaign_id == campaign.id,
                CampaignLead.state.in_((MemberState.PENDING, MemberState.RETRY)),
                or_(
                    CampaignLead.next_attempt_at.is_(None), CampaignLead.next_attempt_at <= utcnow()
                ),
            )
        )
    counts = {state.value: 0 for state in MemberState}
    counts.update({row[0]: int(row[1]) for row in rows})
    by_status = {status.value: 0 for status in AttemptStatus}
    by_status.update({row[0]: int(row[1]) for row in attempts})
    return JSONResponse(
        {
            "campaign_id": campaign.id,
            "status": campaign.status,
            "status_reason": campaign.status_reason,
            "total": sum(counts.values()),
            "states": counts,
            "due": int(due or 0),
            "in_flight": sum(by_status[s] for s in LIVE_ATTEMPT_STATUSES),
            "attempts": by_status,
        }
    )


routes = [
    Route("/campaigns", create_campaign, methods=["POST"]),
    Route("/campaigns", list_campaigns, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}", read_campaign, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}", update_campaign, methods=["PATCH"]),
    Route("/campaigns/{campaign_id:int}/leads", add_leads, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/stats", stats, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/{action}", transition, methods=["POST"]),
]
