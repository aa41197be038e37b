"""The webhook dispatcher of one process, and the ``deliver_webhook`` actor it feeds.

On a real broker the worker process runs :func:`run_dispatcher` in its event-loop thread:
due deliveries are claimed there and sent as ``deliver_webhook`` messages; the actor runs
each attempt on that same loop (its database engine and HTTP client live there). On the
embedded broker the web process runs the dispatcher, which delivers directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Final

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.errors import StorageError
from voicebot.notify.sms import send_pending, sms_enabled
from voicebot.recordings.calls import purge_expired
from voicebot.recordings.storage import RecordingStore, build_store
from voicebot.telephony.rest import TwilioDialer
from voicebot.webhooks.delivery import Dispatcher

log = structlog.get_logger(__name__)

ACTOR_WAIT_MARGIN_S: Final = 5.0
RETENTION_INTERVAL_S: Final = 3600.0


class WebhookRunner:
    """The process's dispatcher and the loop it runs on (set while it runs)."""

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def deliver_blocking(self, delivery_id: int, timeout_s: float) -> None:
        """The actor's body: one attempt on the dispatcher's loop, from a worker thread.
        A process without a running dispatcher leaves the row to its lease."""
        dispatcher, loop = self.dispatcher, self.loop
        if dispatcher is None or loop is None:
            log.warning("webhook.no_dispatcher", delivery_id=delivery_id)
            return
        future = asyncio.run_coroutine_threadsafe(dispatcher.deliver(delivery_id), loop)
        future.result(timeout=timeout_s + ACTOR_WAIT_MARGIN_S)


async def run_dispatcher(
    settings: Settings,
    stop: asyncio.Event,
    *,
    send: Callable[[int], None] | None = None,
    runner: WebhookRunner | None = None,
) -> None:
    """Run a dispatcher until ``stop``: its own engine and HTTP client."""
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    dispatcher = Dispatcher(settings=settings, sessions=sessions, send=send)
    if runner is not None:
        runner.dispatcher, runner.loop = dispatcher, asyncio.get_running_loop()
    log.info("webhooks.dispatcher_started", via_broker=send is not None)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(dispatcher.run(stop))
            tg.create_task(_retention(settings, sessions, stop))
            if sms_enabled(settings):
                tg.create_task(_texts(settings, sessions, stop))
    finally:
        if runner is not None:
            runner.dispatcher = None
        await dispatcher.aclose()
        await engine.dispose()


async def _retention(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> None:
    """Delete recordings past ``RECORDING_RETENTION_DAYS``, hourly; a failed pass (store
    or database down) is logged and tried at the next."""
    store: RecordingStore | None = None
    while not stop.is_set():
        try:
            store = store or build_store(settings)  # a misconfigured store: StorageError
            while await purge_expired(sessions, store, settings):
                pass
        except (StorageError, SQLAlchemyError, OSError) as exc:
            reason = exc.message if isinstance(exc, StorageError) else type(exc).__name__
            log.warning("recordings.purge_failed", error=reason)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RETENTION_INTERVAL_S)


async def _texts(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> None:
    """Send queued SMS confirmations every poll interval; a failed pass is logged."""
    texter = TwilioDialer.from_settings(settings)
    try:
        while not stop.is_set():
            try:
                await send_pending(sessions, settings, texter)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("sms.pass_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.webhook_poll_interval_s)
    finally:
        texter.close()


def deliver_actor(broker: Any, runner: WebhookRunner, settings: Settings) -> Any:
    """Register ``deliver_webhook`` on ``broker``: the retry schedule is the table's, so
    Dramatiq itself does not retry (a lost attempt comes back when its lease ends)."""
    import dramatiq

    def deliver_webhook(delivery_id: int) -> None:
        runner.deliver_blocking(delivery_id, settings.webhook_timeout_s)

    return dramatiq.actor(broker=broker, actor_name="deliver_webhook", max_retries=0)(
        deliver_webhook
    )
