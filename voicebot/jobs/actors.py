"""The Dramatiq broker, the nudge actor and the process's campaign sweeper, from Settings.

The database decides what is due (:mod:`voicebot.jobs.sweeper`); a Dramatiq message only
nudges: ``start``/``resume`` send ``nudge_campaign`` so a worker's sweeper passes at
once instead of at its next period. Losing the message costs at most one period.

The broker comes from :mod:`voicebot.jobs.broker` (``BROKER_URL``/``REDIS_URL``, else a
StubBroker, on which ``voicebot serve`` runs the sweeper itself: the embedded default).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.stub import StubBroker

from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.jobs.broker import build_broker
from voicebot.jobs.nudger import Nudger
from voicebot.jobs.pacing import LocalPacer, Pacer, RedisPacer
from voicebot.jobs.sweeper import Sweeper
from voicebot.jobs.webhooks import WebhookRunner, deliver_actor, run_dispatcher
from voicebot.store.optout_outbox import OptOutOutbox
from voicebot.telephony.rest import TwilioDialer

log = structlog.get_logger(__name__)
WORKER_THREADS = 2
SWEEPER_STOP_TIMEOUT_S = 10.0


@dataclass
class Jobs:
    broker: dramatiq.Broker
    nudge_campaign: Any
    worker: dramatiq.Worker | None = None
    sweepers: list[Sweeper] = field(default_factory=list)
    deliver_webhook: Any = None
    """The ``deliver_webhook`` actor (run by the worker's dispatcher loop)."""
    webhooks: WebhookRunner = field(default_factory=WebhookRunner)
    nudger: Nudger | None = None
    """Sends ``nudge_campaign`` off the event loop (built from it when not given)."""

    def __post_init__(self) -> None:
        if self.nudger is None:
            self.nudger = Nudger(self.nudge_campaign.send)

    @property
    def name(self) -> str:
        return type(self.broker).__name__

    @property
    def embedded(self) -> bool:
        """True on the in-process broker: the web process sweeps itself."""
        return isinstance(self.broker, StubBroker)

    def nudge(self, campaign_id: int) -> None:
        """Ask for a sweep now: this process's sweeper, and the workers' through the broker.

        Never blocks and never raises (safe on the event loop): the broker message is sent
        from the :class:`~voicebot.jobs.nudger.Nudger`'s thread, and a broker that fails
        or stalls is logged there; the sweep comes anyway within its period.
        """
        for sweeper in self.sweepers:
            sweeper.wake()
        if self.embedded or self.nudger is None:
            return
        self.nudger.nudge(campaign_id)

    def stop(self) -> None:
        if self.nudger is not None:
            self.nudger.close()
        if self.worker is not None:
            self.worker.stop()
        self.broker.close()


def build_jobs(settings: Settings, *, in_process_worker: bool = False) -> Jobs:
    """The broker and the nudge actor (``in_process_worker`` is kept for callers; the
    embedded default needs no worker thread: the web process's sweeper is woken directly)."""
    broker = build_broker(settings)
    jobs_ref: list[Jobs] = []

    def nudge_campaign(campaign_id: int) -> None:
        for sweeper in jobs_ref[0].sweepers:
            sweeper.wake()

    actor: Any = dramatiq.actor(broker=broker, actor_name="nudge_campaign", max_retries=0)(
        nudge_campaign
    )
    runner = WebhookRunner()
    jobs = Jobs(
        broker=broker,
        nudge_campaign=actor,
        deliver_webhook=deliver_actor(broker, runner, settings),
        webhooks=runner,
    )
    jobs_ref.append(jobs)
    return jobs


def dialing_enabled(settings: Settings) -> bool:
    return bool(settings.twilio_account_sid and settings.twilio_auth_token)


def build_pacer(settings: Settings, redis: Any | None) -> Pacer:
    """Redis-shared pacing when Redis is configured, else in-process."""
    if redis is not None:
        return RedisPacer(redis, account_cps=settings.twilio_cps, url=str(settings.redis_url))
    return LocalPacer(account_cps=settings.twilio_cps)


async def run_sweeper(
    settings: Settings,
    jobs: Jobs,
    stop: asyncio.Event,
    *,
    optouts: OptOutOutbox | None = None,
) -> None:
    """Run this process's sweeper until ``stop``: own engine, REST client and pacer. It
    drains ``optouts`` (the web process's outbox), else the Redis outbox when Redis is
    configured, else this process's own (a worker's, which no call writes to)."""
    engine = create_engine(settings)
    redis: Any = None
    if settings.redis_url is not None:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(
            settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
    twilio = TwilioDialer.from_settings(settings)
    pacer = build_pacer(settings, redis)
    sweeper = Sweeper(
        settings=settings,
        sessions=create_sessionmaker(engine),
        twilio=twilio,
        pacer=pacer,
        optouts=optouts if optouts is not None else OptOutOutbox(redis=redis),
    )
    jobs.sweepers.append(sweeper)
    log.info("sweeper.started", owner=sweeper.owner)
    try:
        await sweeper.run(stop)
    finally:
        jobs.sweepers.remove(sweeper)
        twilio.close()
        if isinstance(pacer, RedisPacer):
            pacer.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()
        log.info("sweeper.stopped", owner=sweeper.owner)


def run_worker(settings: Settings, *, wait: Callable[[], None]) -> None:
    """``voicebot worker``: consume the broker and sweep campaigns until ``wait`` returns."""
    jobs = build_jobs(settings)
    jobs.worker = dramatiq.Worker(jobs.broker, worker_threads=WORKER_THREADS)
    jobs.worker.start()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    if not dialing_enabled(settings):
        log.warning("worker.dialing_disabled", missing="TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN")

    async def loop_work() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                run_dispatcher(settings, stop, send=jobs.deliver_webhook.send, runner=jobs.webhooks)
            )
            if dialing_enabled(settings):
                tg.create_task(run_sweeper(settings, jobs, stop))

    thread = threading.Thread(
        target=loop.run_until_complete, args=(loop_work(),), name="worker-loop", daemon=True
    )
    thread.start()
    log.info("worker.started", broker=jobs.name, threads=WORKER_THREADS)
    try:
        wait()
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(SWEEPER_STOP_TIMEOUT_S)
        jobs.stop()
        log.info("worker.stopped")
