"""Health probes (liveness, readiness naming the failing part, info) and /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicebot import __version__
from voicebot.api.dead_letters import app_broker
from voicebot.api.schemas import HealthOut, InfoOut, ReadyOut
from voicebot.api.spec import Returns, operation
from voicebot.api.state import AppState, app_state
from voicebot.db.engine import engine_kind, ping
from voicebot.db.schema import SchemaNotAtHeadError, schema_state
from voicebot.jobs.broker import probe_broker
from voicebot.jobs.campaign_metrics import refresh_campaign_metrics
from voicebot.jobs.dead_letters import dead_letter_store

READY_CHECK_TIMEOUT_S = 2.0
log = structlog.get_logger(__name__)


@operation(
    summary="Liveness", tags=("ops",), replies=(Returns(200, HealthOut),), errors=(), public=True
)
async def health(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def check(name: str, coro: Any) -> tuple[str, str | None]:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await coro
    except (TimeoutError, OSError, Exception) as exc:
        return name, f"{type(exc).__name__}: {str(exc)[:200]}"
    return name, None


async def broker_check(state: AppState) -> tuple[str, str | None]:
    """The job broker answers for real: Redis ping, a RabbitMQ connection, the stub always.

    Runs the blocking probe in a thread under READY_CHECK_TIMEOUT_S; the error names the
    backend (``"broker", "BrokerUnavailableError: redis: ConnectionError: …"``).
    """
    broker = app_broker(state)
    if broker is None:
        return "broker", "not started"
    return await check("broker", asyncio.to_thread(probe_broker, broker))


async def _schema_at_head(engine: Any) -> None:
    """Raise when the database is not at the code's head revision (a deploy's migration
    has not run): serving would fail on the first query that needs the new schema."""
    found = await schema_state(engine)
    if not found.at_head:
        current = ",".join(sorted(found.current)) or "empty"
        needed = ",".join(sorted(found.head))
        raise SchemaNotAtHeadError(f"at {current}, needs {needed}; run voicebot migrate")


@operation(
    summary="Readiness: database, schema revision, Redis, broker",
    tags=("ops",),
    description="503 names the failing parts.",
    replies=(Returns(200, ReadyOut), Returns(503, ReadyOut)),
    errors=(),
    public=True,
)
async def ready(request: Request) -> Response:
    state = app_state(request)
    checks = [
        check(engine_kind(state.engine), ping(state.engine)),
        check("schema", _schema_at_head(state.engine)),
    ]
    if state.redis is not None:
        checks.append(check("redis", state.redis.ping()))
    checks.append(broker_check(state))
    checks.append(calls_check(state))
    checks.append(providers_check(state))
    results = await asyncio.gather(*checks)
    broker = state.extras.get("broker_name", "stub")
    parts: dict[str, str] = {name: ("ok" if err is None else err) for name, err in results}
    failing = [name for name, err in results if err is not None]
    health = state.extras.get("provider_health")
    providers = {} if health is None else health.report()  # each stage's last outcome
    mode = {} if health is None else health.mode()
    if health is not None and "providers" not in failing:
        # Not "ok" for a provider that is absent: say what is off and what serves instead.
        parts["providers"] = health.summary()
    if engine_kind(state.engine) in failing:
        # An unreachable database has no revision to compare: name only the database.
        failing = [name for name in failing if name != "schema"]
        parts["schema"] = "unknown"
    if failing:
        log.warning("health.not_ready", failing=failing)
        return JSONResponse(
            {
                "status": "unavailable",
                "failing": failing,
                "checks": parts,
                "broker": broker,
                "providers": providers,
                "mode": mode,
            },
            status_code=503,
        )
    return JSONResponse(
        {"status": "ready", "checks": parts, "broker": broker, "providers": providers, "mode": mode}
    )


async def providers_check(state: AppState) -> tuple[str, str | None]:
    """Not ready while a provider's last error is one no retry fixes (a wrong API key, no
    access, an unknown model): every call would fail (``"providers", "llm: …HTTP 401…"``)."""
    health = state.extras.get("provider_health")
    fatal: dict[str, str] = {} if health is None else health.fatal()
    if not fatal:
        return "providers", None
    return "providers", "; ".join(f"{stage}: {error}" for stage, error in fatal.items())


async def calls_check(state: AppState) -> tuple[str, str | None]:
    """Not ready while the process drains (SIGTERM) or holds MAX_CALLS_PER_PROCESS calls,
    so the load balancer sends new calls elsewhere (``"calls", "draining: 3 live calls"``)."""
    registry = state.extras.get("call_registry")
    reason: str | None = None if registry is None else registry.refusal()
    if registry is None or reason is None:
        return "calls", None
    return "calls", f"{reason}: {registry.live} live calls"


@operation(
    summary="Version, masked configuration and features",
    tags=("ops",),
    replies=(Returns(200, InfoOut),),
    errors=(),
    public=True,
)
async def info(request: Request) -> Response:
    state = app_state(request)
    return JSONResponse(
        {
            "version": __version__,
            "config": state.settings.summary(),
            "features": state.extras.get("features", {}),
        }
    )


@operation(
    summary="Prometheus metrics",
    tags=("ops",),
    replies=(Returns(200, media_type="text/plain"),),
    errors=(),
    public=True,
)
async def metrics(request: Request) -> Response:
    state = app_state(request)
    # Campaign engine gauges: refreshed from the database at scrape time (a1).
    broker = state.extras.get("broker")
    await refresh_campaign_metrics(
        state.sessions, state.metrics, dead_letter_store(broker) if broker is not None else None
    )
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
    Route("/health/info", info, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
