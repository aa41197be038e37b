"""The Dramatiq broker and actors, built from Settings (no broker is touched at import).

Redis broker when ``REDIS_URL`` is set (shared by every worker); otherwise a StubBroker
with an in-process worker thread, so a dev server runs campaigns with nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.brokers.stub import StubBroker

from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Campaign, CampaignStatus
from voicebot.jobs.broker import build_broker
from voicebot.jobs.dialing import dial_due
from voicebot.telephony.rest import TwilioDialer

log = structlog.get_logger(__name__)
TICK_INTERVAL_S = 5.0
OUTSIDE_WINDOW_RECHECK_S = 300.0
WORKER_THREADS = 4


@dataclass
class Jobs:
    broker: dramatiq.Broker
    tick_campaign: Any
    worker: dramatiq.Worker | None = None

    @property
    def name(self) -> str:
        return type(self.broker).__name__

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.broker.close()


def build_jobs(settings: Settings, *, in_process_worker: bool) -> Jobs:
    broker = build_broker(settings)

    async def tick(campaign_id: int) -> float | None:
        """One dialing pass; returns seconds until the next one, or None when done."""
        engine = create_engine(settings)
        try:
            report = await dial_due(
                settings=settings,
                sessions=create_sessionmaker(engine),
                dialer=TwilioDialer.from_settings(settings),
                campaign_id=campaign_id,
            )
            async with create_sessionmaker(engine)() as session:
                campaign = await session.get(Campaign, campaign_id)
                running = campaign is not None and campaign.status == CampaignStatus.RUNNING
        finally:
            await engine.dispose()
        log.info(
            "campaign.tick",
            campaign_id=campaign_id,
            placed=len(report.placed),
            skipped_dnc=len(report.skipped_dnc),
            failed=len(report.failed),
            outside_window=report.outside_window,
        )
        if not running:
            return None
        return OUTSIDE_WINDOW_RECHECK_S if report.outside_window else TICK_INTERVAL_S

    def tick_campaign(campaign_id: int) -> None:
        delay_s = asyncio.run(tick(campaign_id))
        if delay_s is not None:
            actor.send_with_options(args=(campaign_id,), delay=int(delay_s * 1000))

    actor: Any = dramatiq.actor(broker=broker, actor_name="tick_campaign", max_retries=3)(
        tick_campaign
    )
    jobs = Jobs(broker=broker, tick_campaign=actor)
    if in_process_worker and isinstance(broker, StubBroker):
        jobs.worker = dramatiq.Worker(broker, worker_threads=1)
        jobs.worker.start()
    return jobs


def dialing_enabled(settings: Settings) -> bool:
    return bool(settings.twilio_account_sid and settings.twilio_auth_token)


def run_worker(settings: Settings, *, wait: Callable[[], None]) -> None:
    """``voicebot worker``: consume the broker until ``wait`` returns (a signal)."""
    jobs = build_jobs(settings, in_process_worker=False)
    jobs.worker = dramatiq.Worker(jobs.broker, worker_threads=WORKER_THREADS)
    jobs.worker.start()
    log.info("worker.started", broker=jobs.name, threads=WORKER_THREADS)
    try:
        wait()
    finally:
        jobs.stop()
        log.info("worker.stopped")
