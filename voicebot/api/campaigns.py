"""Campaigns: create, get, list, add leads, the status state machine, stats."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot.api.body import int_param, parse_body
from voicebot.api.leads import page_params
from voicebot.api.schemas import (
    AddLeadsIn,
    AddLeadsOut,
    CampaignActionPath,
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignPath,
    CampaignStatsOut,
    Page,
    iso,
)
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.config import WEEKDAY_NAMES
from voicebot.db.models import (
    Campaign,
    CampaignLead,
    CampaignStatus,
    DoNotCall,
    Lead,
    LeadStatus,
    MemberState,
)
from voicebot.db.scripts import script_from_stored
from voicebot.db.types import utcnow
from voicebot.errors import InvalidInputError, InvalidStateError, NotFoundError
from voicebot.jobs.actors import dialing_enabled

S = CampaignStatus
# action -> (allowed source states, target state)
TRANSITIONS: dict[str, tuple[frozenset[str], CampaignStatus]] = {
    "start": (frozenset({S.DRAFT}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "cancel": (frozenset({S.DRAFT, S.RUNNING, S.PAUSED}), S.CANCELLED),
}
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
        "status_reason": c.status_reason,
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
        "created_at": iso(c.created_at),
    }


def _validate(data: CampaignIn) -> None:
    problems = []
    try:
        ZoneInfo(data.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append({"field": "timezone", "message": "unknown time zone"})
    days = [d.strip().lower() for d in data.window_days.split(",") if d.strip()]
    if not days or any(d not in WEEKDAY_NAMES for d in days):
        problems.append({"field": "window_days", "message": "use sun,mon,tue,wed,thu,fri,sat"})
    if data.window_start >= data.window_end:
        problems.append({"field": "window_end", "message": "must be after window_start"})
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
    _validate(data)
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
        campaign = await _get(session, int_param(request, "campaign_id"))
        if campaign.status in (S.COMPLETED, S.CANCELLED):
            raise InvalidStateError(f"campaign is {campaign.status}")
        stmt = select(Lead).where(Lead.status.not_in(UNCALLABLE_LEAD_STATUSES))
        stmt = stmt.where(Lead.phone.not_in(select(DoNotCall.phone)))
        if data.lead_ids is not None:
            stmt = stmt.where(Lead.id.in_(data.lead_ids))
        if data.status is not None:
            stmt = stmt.where(Lead.status == data.status)
        leads = list((await session.scalars(stmt)).all())
        if data.tag is not None:
            leads = [lead for lead in leads if data.tag in (lead.tags or [])]
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
        missing = sorted(set(data.lead_ids or []) - {lead.id for lead in leads})
    return JSONResponse({"added": added, "already_member": len(leads) - added, "skipped": missing})


@operation(
    summary="Start, pause, resume or cancel a campaign",
    tags=("campaigns",),
    path=CampaignActionPath,
    replies=(Returns(200, CampaignOut),),
    errors=(404, 409, 422),
)
async def transition(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in TRANSITIONS:
        raise NotFoundError(f"unknown action {action!r}")
    allowed, target = TRANSITIONS[action]
    async with app_state(request).sessions() as session:
        campaign = await _get(session, int_param(request, "campaign_id"))
        if campaign.status not in allowed:
            raise InvalidStateError(f"cannot {action} a {campaign.status} campaign")
        campaign.status = target
        if action == "start":
            campaign.started_at = utcnow()
        if target == S.CANCELLED:
            campaign.finished_at = utcnow()
        await session.commit()
        body = campaign_json(campaign)
    state = app_state(request)
    if target == S.RUNNING and dialing_enabled(state.settings):
        state.extras["jobs"].tick_campaign.send(campaign.id)
    return JSONResponse(body)


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
    counts = {state.value: 0 for state in MemberState}
    counts.update({row[0]: int(row[1]) for row in rows})
    return JSONResponse(
        {
            "campaign_id": campaign.id,
            "status": campaign.status,
            "total": sum(counts.values()),
            "states": counts,
        }
    )


routes = [
    Route("/campaigns", create_campaign, methods=["POST"]),
    Route("/campaigns", list_campaigns, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}", read_campaign, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/leads", add_leads, methods=["POST"]),
    Route("/campaigns/{campaign_id:int}/stats", stats, methods=["GET"]),
    Route("/campaigns/{campaign_id:int}/{action}", transition, methods=["POST"]),
]
