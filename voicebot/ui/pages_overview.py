"""The console's overview: live calls (polled), today's outcomes, meetings, turn latency
percentiles of the last hour, provider errors, and the readiness checks of ``/health/ready``."""

from __future__ import annotations

import asyncio
from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voicebot.api import health
from voicebot.api.state import AppState, app_state
from voicebot.db import queries
from voicebot.db.engine import engine_kind, ping
from voicebot.db.types import utcnow
from voicebot.ui.pages_calls import stages_ms
from voicebot.ui.render import page

LATENCY_WINDOW = timedelta(hours=1)
PERCENTILES = (50, 95)


def _latency_table(latencies: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """p50/p95 per stage and of the total, in ms, over the given turns."""
    if not latencies:
        return {}
    rows = [stages_ms(latency) for latency in latencies]
    table: dict[str, dict[int, float]] = {}
    for stage in ("endpoint", "stt", "llm", "tts"):
        values = np.array([row[stage] for row in rows], dtype=float)
        table[stage] = {p: float(np.percentile(values, p)) for p in PERCENTILES}
    totals = np.array(
        [
            float(lat.get("total") or sum(row.values()))
            for lat, row in zip(latencies, rows, strict=True)
        ]
    )
    table["total"] = {p: float(np.percentile(totals, p)) for p in PERCENTILES}
    return table


async def health_checks(state: AppState) -> dict[str, str | None]:
    """The readiness probe's checks (database, Redis, broker, providers), by name: None
    when healthy, else the error text; Redis is absent when not configured."""
    checks = [health.check(engine_kind(state.engine), ping(state.engine))]
    if state.redis is not None:
        checks.append(health.check("redis", state.redis.ping()))
    checks.append(health.broker_check(state))
    checks.append(health.providers_check(state))
    return dict(await asyncio.gather(*checks))


def provider_error_counts(state: AppState) -> dict[str, int]:
    """Provider failures counted by this process since it started, by ``stage/kind``."""
    counts: dict[str, int] = {}
    for metric in state.metrics.provider_errors.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.value:
                key = f"{sample.labels.get('stage', '')}/{sample.labels.get('kind', '')}"
                counts[key] = int(sample.value)
    return counts


async def _today(state: AppState) -> dict[str, Any]:
    """Today's calls by outcome and the meetings of today and of this week (from Sunday)."""
    tz = state.settings.tz
    local = utcnow().astimezone(tz)
    day_start = datetime.combine(local.date(), time(0), tzinfo=tz)
    week_start = day_start - timedelta(days=(local.weekday() + 1) % 7)  # Sunday
    async with state.sessions() as session:
        outcomes = await queries.outcomes_since(session, day_start)
        meetings_today = await queries.count_meetings(
            session, day_start, day_start + timedelta(days=1)
        )
        meetings_week = await queries.count_meetings(
            session, week_start, week_start + timedelta(days=7)
        )
    return {
        "outcomes": dict(sorted(outcomes.items(), key=lambda kv: -kv[1])),
        "calls_today": sum(outcomes.values()),
        "meetings_today": meetings_today,
        "meetings_week": meetings_week,
        "today_iso": local.date().isoformat(),
    }


async def overview(request: Request) -> Response:
    state = app_state(request)
    since = utcnow() - LATENCY_WINDOW
    async with state.sessions() as session:
        computed = await queries.turn_latency_percentiles(session, since, PERCENTILES)
        if computed is None:  # not Postgres: the newest turns' breakdowns, here
            latencies = await queries.turn_latencies_since(session, since)
            computed = len(latencies), _latency_table(latencies)
    turns, table = computed
    provider_health = state.extras.get("provider_health")
    report: dict[str, Any] = {} if provider_health is None else provider_health.report()
    context = {
        **await _today(state),
        "latency": {stage: {p: int(v) for p, v in row.items()} for stage, row in table.items()},
        "latency_turns": turns,
        "providers": report,
        "checks": await health_checks(state),
        "provider_errors": provider_error_counts(state),
    }
    return page(request, "overview.html", context)


async def today_fragment(request: Request) -> Response:
    """Today's outcome and meeting counts, polled by the overview every five seconds."""
    return page(request, "today.html", await _today(app_state(request)))


async def live_fragment(request: Request) -> Response:
    """The live calls box, polled by the overview (htmx) every two seconds."""
    state = app_state(request)
    async with state.sessions() as session:
        calls = await queries.live_calls(session)
        count = await queries.count_live_calls(session)
        leads = await queries.leads_by_id(session, [c.lead_id for c in calls])
    return page(request, "live.html", {"calls": calls, "count": count, "leads": leads})


routes = [
    Route("/", overview, methods=["GET"]),
    Route("/live", live_fragment, methods=["GET"]),
    Route("/today", today_fragment, methods=["GET"]),
]
