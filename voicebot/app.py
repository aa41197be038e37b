"""The Starlette app factory and its lifespan, which owns every connection."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from voicebot.api import (
    calls,
    campaigns,
    conversation,
    dnc,
    health,
    leads,
    meetings,
    openapi,
    scripts,
    twilio,
    webhooks,
)
from voicebot.api.dead_letters import routes as dead_letter_routes
from voicebot.api.errors import EXCEPTION_HANDLERS
from voicebot.api.middleware import (
    ApiGuardMiddleware,
    BodyLimitMiddleware,
    ErrorBoundaryMiddleware,
    RequestContextMiddleware,
)
from voicebot.api.rate_limits import RateLimits
from voicebot.api.state import AppState
from voicebot.api.twilio_amd import transcript_machine
from voicebot.api.twilio_status_warm import warm_status_statements
from voicebot.brain.intent_model import shipped_model
from voicebot.call.registry import DRAIN_GOODBYE_TEXT, CallRegistry
from voicebot.call.speaker import FIXED_PHRASES, warm_phrases
from voicebot.call.wiring import build_call_services
from voicebot.config import Settings, load_settings
from voicebot.db.engine import (
    create_autocommit_engine,
    create_engine,
    create_sessionmaker,
    dispose_engines,
    warm_pool,
)
from voicebot.db.optouts import close_outbox, run_outbox_drain
from voicebot.jobs.actors import build_jobs, dialing_enabled, run_sweeper
from voicebot.jobs.webhooks import run_dispatcher
from voicebot.logging import configure_logging
from voicebot.loop_monitor import freeze_startup_heap, watch_gc_pauses, watch_loop_lag
from voicebot.metrics import Metrics
from voicebot.providers.factory import build_providers
from voicebot.providers.health import ProviderHealth
from voicebot.recordings.storage import check_store
from voicebot.scheduling.calendars import warm_holiday_tables
from voicebot.startup import check_deployment
from voicebot.store.optout_outbox import OptOutOutbox
from voicebot.store.phrases import RedisPhrases
from voicebot.store.redis import RedisStore
from voicebot.store.resilient import ResilientStore
from voicebot.ui.app import CSV_UPLOAD_SUFFIXES, console_mount

log = structlog.get_logger(__name__)


def features(settings: Settings) -> dict[str, Any]:
    """Which optional features are on, so the server can say what is off and why."""
    return {
        "espeak_tts": shutil.which("espeak-ng") is not None,
        "openai_stt": settings.provider("stt").configured,
        "openai_llm": settings.provider("llm").configured,
        "openai_tts": settings.provider("tts").configured,
        "redis": settings.redis_url is not None,
        "twilio": bool(settings.twilio_account_sid and settings.twilio_auth_token),
    }


def trusted_proxy(settings: Settings) -> list[Middleware]:
    """Outermost: the client address from ``X-Forwarded-For`` when the connecting peer is a
    proxy listed in ``FORWARDED_ALLOW_IPS`` (uvicorn's middleware); nothing when unset."""
    if not settings.forwarded_allow_ips:
        return []
    if settings.forwarded_allow_ips == "*":
        return [Middleware(NearestHopProxyHeaders)]
    return [Middleware(ProxyHeadersMiddleware, trusted_hosts=with_mapped_ipv4(settings))]


class NearestHopProxyHeaders(ProxyHeadersMiddleware):
    """``FORWARDED_ALLOW_IPS=*``: any peer is a proxy and the client is the last
    ``X-Forwarded-For`` entry, the one that proxy appended. (uvicorn's ``*`` takes the
    first entry, which the client writes itself, and would let it pick its own sign-in
    throttle bucket on every try.) A chain of proxies is named entry by entry instead."""

    def __init__(self, app: Any) -> None:
        super().__init__(app, trusted_hosts="*")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            hops = b",".join(v for k, v in scope["headers"] if k == b"x-forwarded-for")
            if hops:
                nearest = hops.rsplit(b",", 1)[-1].strip()
                scope = dict(scope)
                scope["headers"] = [
                    (k, v) for k, v in scope["headers"] if k != b"x-forwarded-for"
                ] + [(b"x-forwarded-for", nearest)]
        await super().__call__(scope, receive, send)


def with_mapped_ipv4(settings: Settings) -> list[str] | str:
    """``FORWARDED_ALLOW_IPS`` as uvicorn's list, each IPv4 address or network joined by its
    IPv4-mapped IPv6 form (``::ffff:10.0.0.2``): a dual-stack listener (``--host ::``) sees
    an IPv4 proxy that way, and uvicorn compares the two forms as different addresses."""
    value = settings.forwarded_allow_ips or ""
    if value == "*":
        return "*"
    entries = value.split(",")
    mapped = []
    for entry in entries:
        network = ipaddress.ip_network(entry, strict=False)
        if isinstance(network, ipaddress.IPv4Network):
            address = f"::ffff:{network.network_address}"
            mapped.append(
                address
                if network.prefixlen == 32 and "/" not in entry
                else f"{address}/{96 + network.prefixlen}"
            )
    return entries + mapped


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    configure_logging(settings)
    for warning in check_deployment(settings):
        log.warning("config.unsafe", problem=warning)
    metrics = Metrics()
    redis_client: Any = None
    if settings.redis_url is not None:
        import redis.asyncio as aioredis

        # Lazy pool: nothing connects until the first command.
        redis_client = aioredis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )

    # Outlives the lifespan's start: `voicebot serve` drains it on SIGTERM.
    registry = CallRegistry(max_calls=settings.max_calls_per_process)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings)
        pooled = await warm_pool(engine, settings.db_pool_warm)
        # The status callbacks' statements, compiled and prepared on each pooled connection
        # (none when Postgres did not answer the pool's warm-up: start-up waits no longer).
        await warm_status_statements(engine, settings, pooled)
        autocommit_engine = create_autocommit_engine(settings, engine)
        state = AppState(
            settings=settings,
            metrics=metrics,
            engine=engine,
            sessions=create_sessionmaker(engine),
            autocommit=create_sessionmaker(autocommit_engine),
            store=ResilientStore(
                RedisStore(redis_client) if redis_client is not None else None,
                call_timeout_s=settings.redis_call_timeout_ms / 1000,
                retry_interval_s=settings.redis_retry_interval_s,
            ),
            redis=redis_client,
        )
        state.extras["features"] = features(settings)
        state.extras["call_registry"] = registry
        await check_store(settings)  # a bucket that cannot be used is said now, once
        providers = build_providers(settings)
        state.extras["call_services"] = build_call_services(
            settings,
            metrics=metrics,
            sessions=state.sessions,
            autocommit=state.autocommit,
            store=state.store,
            providers=providers,
            shared_phrases=None
            if redis_client is None
            else RedisPhrases(
                redis_client,
                call_timeout_s=settings.redis_call_timeout_ms / 1000,
                retry_interval_s=settings.redis_retry_interval_s,
            ),
        )
        # Opt-outs the database refused wait here; shared through Redis when configured.
        optouts = OptOutOutbox(redis=redis_client)
        state.extras["call_services"].optouts = optouts
        # The live call's first-words check acts through the AMD route's one code path.
        state.extras["call_services"].on_machine_speech = partial(transcript_machine, state)
        provider_health = ProviderHealth(providers)
        state.extras["provider_health"] = provider_health
        await provider_health.warm_up()
        jobs = build_jobs(settings)
        state.extras["jobs"] = jobs
        if redis_client is None and not jobs.embedded:
            # Workers sweep elsewhere and cannot read this process's memory: an opt-out
            # deferred here is written by this process's drain loop alone, up to one sweep
            # period after the database is back, while a worker may already claim the lead.
            log.warning(
                "optout.outbox_not_shared",
                problem="opt-outs deferred in a database outage stay in this process "
                "(workers cannot see them; lost if it stops); set REDIS_URL",
            )
        # Embedded default: no worker process, so this process sweeps campaigns itself.
        sweeper_stop = asyncio.Event()
        sweeper_task = (
            asyncio.create_task(run_sweeper(settings, jobs, sweeper_stop, optouts=optouts))
            if jobs.embedded and dialing_enabled(settings)
            else None
        )
        # No sweeper here: this process still writes the opt-outs its calls deferred.
        drain_task = (
            asyncio.create_task(run_outbox_drain(optouts, state.sessions, settings, sweeper_stop))
            if sweeper_task is None
            else None
        )
        # ...and delivers webhook events itself (a worker does on a real broker).
        webhook_task = (
            asyncio.create_task(run_dispatcher(settings, sweeper_stop, runner=jobs.webhooks))
            if jobs.embedded
            else None
        )
        state.extras["broker_name"] = jobs.name
        state.extras["broker"] = jobs.broker  # dead letters and the readiness probe read it
        app.state.voicebot = state
        await warm_phrases(state.extras["call_services"], (*FIXED_PHRASES, DRAIN_GOODBYE_TEXT))
        off = [name for name, on in state.extras["features"].items() if not on]
        log.info("app.started", database=engine.dialect.name, features_off=off)
        if not state.extras["features"]["espeak_tts"]:
            log.warning("app.espeak_missing", install="apt-get install -y espeak-ng")
        lag_watch = asyncio.create_task(watch_loop_lag(metrics.loop_lag, metrics.loop_lag_worst))
        store_watch = asyncio.create_task(state.store.watch())
        provider_watch = asyncio.create_task(provider_health.watch())
        # What the first call would otherwise build on the event loop, mid-call: the
        # holiday calendar (~170 ms) and the intent model's tables; then frozen with the rest.
        warm_holiday_tables(datetime.now(UTC).date())
        shipped_model()
        freeze_startup_heap()
        unwatch_gc = watch_gc_pauses(metrics.gc_pause)
        try:
            yield
        finally:
            unwatch_gc()
            lag_watch.cancel()
            store_watch.cancel()
            provider_watch.cancel()
            sweeper_stop.set()
            if sweeper_task is not None:
                await sweeper_task
            if drain_task is not None:
                await drain_task
            # An in-process outbox dies here: a last drain, then anything left is said.
            await close_outbox(optouts, state.sessions, settings)
            if webhook_task is not None:
                await webhook_task
            jobs.stop()
            await providers.aclose()
            await dispose_engines(engine, autocommit_engine)
            if redis_client is not None:
                await redis_client.aclose()
            log.info("app.stopped")

    api_routes = [
        *leads.routes,
        *meetings.routes,
        *campaigns.routes,
        *scripts.routes,
        *calls.routes,
        *dnc.routes,
        *conversation.routes,
        *dead_letter_routes,
        *webhooks.routes,
    ]
    limits = RateLimits(redis=redis_client)
    routes = [
        *health.routes,
        *openapi.routes(),
        *twilio.routes,
        Mount("/api/v1", routes=api_routes),
        console_mount(settings, limits),
    ]
    middleware = [
        *trusted_proxy(settings),
        Middleware(RequestContextMiddleware, metrics=metrics),
        Middleware(ErrorBoundaryMiddleware),
        Middleware(
            BodyLimitMiddleware,
            max_body_bytes=settings.max_body_bytes,
            path_limits={"/api/v1/leads/import": settings.max_import_bytes},
            suffix_limits=dict.fromkeys(CSV_UPLOAD_SUFFIXES, settings.max_import_bytes),
        ),
        Middleware(
            ApiGuardMiddleware,
            settings=settings,
            metrics=metrics,
            limits=limits,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.call_registry = registry
    app.state.drain_timeout_s = settings.drain_timeout_s
    return app
