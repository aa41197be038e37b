"""On a real broker the worker's dispatcher hands due deliveries to the ``deliver_webhook``
Dramatiq actor, which runs each attempt on the dispatcher's loop (here: the stub broker
with a Dramatiq worker thread, as ``voicebot worker`` runs it)."""

from __future__ import annotations

import asyncio

import dramatiq

from tests.conftest import make_settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.jobs.actors import build_jobs
from voicebot.jobs.webhooks import run_dispatcher
from voicebot.testing.twilio_api_sim import serve_on_loopback
from voicebot.testing.webhook_receiver import WebhookReceiver
from voicebot.webhooks.events import EventType, emit

SECRET = "whsec_actor_0123456789"


async def test_worker_actor_delivers_a_recorded_event(database_url: str) -> None:
    """An event committed by the web process reaches the receiver through the actor."""
    receiver = WebhookReceiver(secret=SECRET)
    async with serve_on_loopback(receiver.app) as base:
        settings = make_settings(
            database_url=database_url,
            webhook_url=f"{base}/hooks",
            webhook_secret=SECRET,
            webhook_poll_interval_s=0.1,
        )
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        async with sessions() as session:
            await emit(session, settings, EventType.LEAD_OPTED_OUT, {"phone": "+972544560000"})
            await session.commit()
        jobs = build_jobs(settings)
        worker = dramatiq.Worker(jobs.broker, worker_threads=1)
        worker.start()
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_dispatcher(settings, stop, send=jobs.deliver_webhook.send, runner=jobs.webhooks)
        )
        try:
            async with asyncio.timeout(15):
                while not receiver.events:  # noqa: ASYNC110 - the receiver has no event
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await task
            await asyncio.to_thread(worker.stop)
            jobs.stop()
            await engine.dispose()
    (event,) = receiver.events.values()
    assert event["type"] == "lead.opted_out" and receiver.bad_signatures == 0
