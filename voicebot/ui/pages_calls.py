"""Console pages for calls: the filterable list and one call's transcript with latencies."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from voicebot.api.state import app_state
from voicebot.db import queries
from voicebot.db.models import CallOutcome, CallTurn
from voicebot.db.queries import CallFilter
from voicebot.ui.render import page, query_day

CALLS_PAGE_SIZE = 50
LATENCY_STAGES = ("endpoint", "stt", "llm", "tts")
LATENCY_BAR_FULL_MS = 2000
"""A turn whose stages add up to this fills its bar (longer ones are drawn full)."""
API_PREFIX = "/api/v1"
RECORDING_API_PATH = "/calls/{call_id:int}/recording"


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and len(text) < 10 else None


def stages_ms(latency: dict[str, Any]) -> dict[str, int]:
    """A turn's stored latency as the four stages an operator reads: the end-of-speech
    wait, recognition, the model's first token (or the rules' answer), the first audio."""

    def get(*keys: str) -> int:
        for key in keys:
            value = latency.get(key)
            if isinstance(value, int | float):
                return max(0, int(value))
        return 0

    return {
        "endpoint": get("endpoint"),
        "stt": get("stt"),
        "llm": get("llm_first_token", "brain"),
        "tts": get("tts_first_byte") + get("first_frame"),
    }


def turn_view(turn: CallTurn) -> dict[str, Any]:
    stages = stages_ms(turn.latency or {}) if turn.role == "assistant" else {}
    total = sum(stages.values())
    if not total:  # a fixed phrase (the greeting) has no stages to draw
        stages = {}
    scale = max(total, LATENCY_BAR_FULL_MS)
    return {
        "role": turn.role,
        "text": turn.text,
        "interrupted": turn.interrupted,
        "stages": stages,
        "total_ms": int((turn.latency or {}).get("total", total) or total),
        "widths": {k: round(100 * v / scale, 1) for k, v in stages.items()} if scale else {},
        "at": turn.created_at,
    }


async def calls_list(request: Request) -> Response:
    state = app_state(request)
    params = request.query_params
    day = query_day(params.get("date"))
    tz = state.settings.tz
    since = until = None
    if day is not None:
        since = datetime.combine(day, time(0), tzinfo=tz)
        until = since + timedelta(days=1)
    outcome = params.get("outcome") or None
    if outcome not in {o.value for o in CallOutcome}:
        outcome = None
    f = CallFilter(
        campaign_id=_int(params.get("campaign")),
        lead_id=_int(params.get("lead")),
        outcome=outcome,
        since=since,
        until=until,
    )
    offset = _int(params.get("offset")) or 0
    async with state.sessions() as session:
        calls = await queries.list_calls(session, f, limit=CALLS_PAGE_SIZE + 1, offset=offset)
        leads = await queries.leads_by_id(session, [c.lead_id for c in calls])
        campaigns = await queries.campaign_names(session)
    more = len(calls) > CALLS_PAGE_SIZE
    context = {
        "calls": calls[:CALLS_PAGE_SIZE],
        "leads": leads,
        "campaigns": campaigns,
        "outcomes": [o.value for o in CallOutcome],
        "filters": {
            "campaign": f.campaign_id,
            "lead": f.lead_id,
            "outcome": outcome or "",
            "date": day.isoformat() if day else "",
        },
        "next_offset": offset + CALLS_PAGE_SIZE if more else None,
    }
    return page(request, "calls.html", context)


async def call_page(request: Request) -> Response:
    state = app_state(request)
    call_id = int(request.path_params["call_id"])
    async with state.sessions() as session:
        call = await queries.call_with_turns(session, call_id)
        if call is None:
            return page(request, "not_found.html", status_code=404)
        leads = await queries.leads_by_id(session, [call.lead_id])
        campaigns = await queries.campaign_names(session)
        meetings = await queries.meetings_for_call(session, call.id)
        turns = [turn_view(t) for t in call.turns]
    recording = call.recording_key is not None  # the player shows only for a stored one
    context = {
        "call": call,
        "lead": leads.get(call.lead_id) if call.lead_id else None,
        "campaign_name": campaigns.get(call.campaign_id) if call.campaign_id else None,
        "turns": turns,
        "meetings": meetings,
        "stages": LATENCY_STAGES,
        "recording_url": f"/ui/calls/{call.id}/recording" if recording else None,
    }
    return page(request, "call.html", context)


def _api_route(request: Request, path: str) -> Route | None:
    """The REST API's route for ``path`` under ``/api/v1`` (None when it has none)."""
    for mount in request.app.routes:
        if isinstance(mount, Mount) and mount.path == API_PREFIX:
            for route in mount.routes:
                if isinstance(route, Route) and route.path == path:
                    return route
    return None


async def call_recording(request: Request) -> Response:
    """The call's recording, answered by the REST API's own handler
    (``GET /api/v1/calls/{id}/recording``): an ``<audio>`` element cannot send the API
    key, so the console's session stands in for it here."""
    route = _api_route(request, RECORDING_API_PATH)
    if route is None:
        return Response(status_code=404)
    return await route.endpoint(request)  # type: ignore[no-any-return]


routes = [
    Route("/calls", calls_list, methods=["GET"]),
    Route("/calls/{call_id:rowid}", call_page, methods=["GET"]),
    Route("/calls/{call_id:rowid}/recording", call_recording, methods=["GET"]),
]
