"""Delivering recorded webhook events: claim what is due, POST it signed, log the result.

The ``webhook_deliveries`` table is the truth (the outbox and the delivery log). A
dispatcher loop (:class:`Dispatcher`, one per worker process, or in the web process on
the embedded broker) claims due rows with a lease and hands each to ``send``: the
Dramatiq actor ``deliver_webhook`` on a real broker, or :meth:`Dispatcher.deliver`
directly on the embedded one. A lost message or a dead worker only delays a delivery:
its lease runs out and the row is claimed again.

Each attempt POSTs the event's JSON with ``Voicebot-Signature`` (a fresh timestamp per
attempt), ``Voicebot-Event-Id`` and ``Voicebot-Event-Type``. A 2xx answer delivers it;
anything else (an error status, a refused connection, a timeout) schedules the next
attempt after ``WEBHOOK_RETRY_BASE_S`` · 2^(attempts − 1), capped at
``WEBHOOK_RETRY_MAX_S``, until the event is ``WEBHOOK_MAX_AGE_S`` old (24 h by default):
then it is ``failed`` and stays listed for a replay. A ``410 Gone`` is final at once
(the receiver says the subscription is gone; a replay still sends it). The whole attempt,
headers and all, is bounded by ``WEBHOOK_TIMEOUT_S`` (a receiver that trickles its
answer byte by byte times out too) and the answer's body is never read.

A ``call.completed`` report that names a recording is held until the recording is
stored (the URL answers 200 when the receiver gets the event), at most
:data:`RECORDING_WAIT_S` after the event; a recording still missing then (its save
failed, its process died) is dropped from the report (``recording_url: null``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Final

import httpx
import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.config import Settings
from voicebot.db.models import Call, Campaign, DeliveryStatus, WebhookDelivery
from voicebot.db.types import utcnow
from voicebot.webhooks.events import EventType
from voicebot.webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)

log = structlog.get_logger(__name__)

CLAIM_BATCH: Final = 50
"""Rows one poll claims at most."""
LEASE_MARGIN_S: Final = 30.0
"""A claimed row is due again this long after its request's timeout (a dead worker)."""
MAX_PARALLEL_DELIVERIES: Final = 8
USER_AGENT: Final = "voicebot-webhooks/1"
ERROR_MAX_CHARS: Final = 500
BACKOFF_MAX_EXPONENT: Final = 30
GONE_STATUS: Final = 410
"""The receiver's "this subscription is gone": not retried."""
RECORDING_WAIT_S: Final = 60.0
"""How long a ``call.completed`` report waits for its recording to be stored."""
RECORDING_RECHECK_S: Final = 0.5
"""How soon a held report is looked at again at first (a WAV is stored in about a second)."""
RECORDING_RECHECK_MAX_S: Final = 5.0
"""...and at most: the wait grows with the report's age, so a hundred calls ending together
under a slow store do not rewrite their rows twice a second for a minute."""


def retry_delay_s(attempts: int, *, base_s: float, max_s: float) -> float:
    """Wait before the next attempt after ``attempts`` failed ones: base · 2^(n − 1), capped."""
    exponent = min(max(0, attempts - 1), BACKOFF_MAX_EXPONENT)
    return float(min(max_s, base_s * (2**exponent)))


def event_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8 (Hebrew as is)."""
    return json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()


async def claim_due(
    session: AsyncSession, settings: Settings, *, limit: int = CLAIM_BATCH
) -> list[int]:
    """Lease the due rows (pending and due, or sending with an expired lease); commits."""
    now = utcnow()
    due = or_(
        and_(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        ),
        and_(WebhookDelivery.status == DeliveryStatus.SENDING, WebhookDelivery.lease_until < now),
    )
    ids = list(
        (
            await session.scalars(
                select(WebhookDelivery.id)
                .where(due)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
    )
    if ids:
        lease = now + timedelta(seconds=settings.webhook_timeout_s + LEASE_MARGIN_S)
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(status=DeliveryStatus.SENDING, lease_until=lease)
            .execution_options(synchronize_session=False)
        )
    await session.commit()
    return ids


class Dispatcher:
    """Claims due deliveries and delivers them; owns its HTTP client."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        send: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.send = send
        """Hands a claimed id to the broker; None: deliver in this loop (embedded)."""
        self._http = httpx.AsyncClient(timeout=settings.webhook_timeout_s, follow_redirects=False)
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_PARALLEL_DELIVERIES)

    def wake(self) -> None:
        """Poll now (a replay, a test)."""
        self._wake.set()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``WEBHOOK_POLL_INTERVAL_S`` until ``stop``; a failed poll (database
        down) is logged and retried at the next one."""
        async with asyncio.TaskGroup() as tg:
            while not stop.is_set():
                try:
                    async with self.sessions() as session:
                        ids = await claim_due(session, self.settings)
                except Exception as exc:
                    log.warning("webhook.poll_failed", error=type(exc).__name__)
                    ids = []
                for delivery_id in ids:
                    if self.send is not None:
                        await asyncio.to_thread(self.send, delivery_id)
                    else:
                        await self._slots.acquire()
                        tg.create_task(self._deliver_in_slot(delivery_id))
                self._wake.clear()
                waiters = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                }
                await asyncio.wait(
                    waiters,
                    timeout=self.settings.webhook_poll_interval_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in waiters:
                    waiter.cancel()

    async def _deliver_in_slot(self, delivery_id: int) -> None:
        try:
            await self.deliver(delivery_id)
        finally:
            self._slots.release()

    async def deliver(self, delivery_id: int) -> bool:
        """One attempt at one claimed delivery; True when the receiver took it. A row that
        is no longer ``sending`` (delivered meanwhile) is left alone."""
        async with self.sessions() as session:
            delivery = await session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.status != DeliveryStatus.SENDING:
                return False
            if not await _recording_settled(session, delivery):
                return False
            secret = await self._secret(session, delivery)
            body = event_body(delivery)
            url, event_id, event_type = delivery.url, delivery.event_id, delivery.event_type
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: event_id,
            EVENT_TYPE_HEADER: event_type,
        }
        if secret:
            headers[SIGNATURE_HEADER] = signature_header(secret, body)
        status_code: int | None = None
        error: str | None = None
        timeout_s = self.settings.webhook_timeout_s
        try:
            async with (
                asyncio.timeout(timeout_s),
                self._http.stream("POST", url, content=body, headers=headers) as response,
            ):
                status_code = response.status_code  # the body is never read
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
        except TimeoutError:
            error = f"no answer in {timeout_s:g} s"
        return await self._record(delivery_id, status_code, error)

    async def _secret(self, session: AsyncSession, delivery: WebhookDelivery) -> str | None:
        campaign = (
            await session.get(Campaign, delivery.campaign_id)
            if delivery.campaign_id is not None
            else None
        )
        if campaign is not None and campaign.webhook_secret:
            return campaign.webhook_secret
        secret = self.settings.webhook_secret
        return secret.get_secret_value() if secret is not None else None

    async def _record(self, delivery_id: int, status_code: int | None, error: str | None) -> bool:
        now = utcnow()
        async with self.sessions() as session:
            delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None:
                return False
            delivery.attempts += 1
            delivery.last_status_code = status_code
            delivery.last_error = error
            delivery.lease_until = None
            if error is None:
                delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
            else:
                wait_s = retry_delay_s(
                    delivery.attempts,
                    base_s=self.settings.webhook_retry_base_s,
                    max_s=self.settings.webhook_retry_max_s,
                )
                next_at = now + timedelta(seconds=wait_s)
                if next_at > delivery.expires_at or status_code == GONE_STATUS:
                    delivery.status = DeliveryStatus.FAILED
                else:
                    delivery.status, delivery.next_attempt_at = DeliveryStatus.PENDING, next_at
            status = delivery.status
            attempts = delivery.attempts
            await session.commit()
        log.info(
            "webhook.attempt",
            delivery_id=delivery_id,
            status=status,
            attempts=attempts,
            http_status=status_code,
            error=error,
        )
        return error is None


async def _recording_settled(session: AsyncSession, delivery: WebhookDelivery) -> bool:
    """May this (claimed) delivery go now? A ``call.completed`` report naming a recording
    not yet stored goes back to ``pending`` (no attempt counted) for up to
    RECORDING_WAIT_S; after that its ``recording_url`` is set to null. Commits a change."""
    if delivery.event_type != EventType.CALL_COMPLETED:
        return True
    data = delivery.payload.get("data")
    if not isinstance(data, dict) or not data.get("recording_url"):
        return True
    call_id = data.get("call_id")
    call = await session.get(Call, call_id) if isinstance(call_id, int) else None
    if call is not None and call.recording_key:
        return True
    now = utcnow()
    age_s = (now - delivery.created_at).total_seconds()
    if call is not None and age_s < RECORDING_WAIT_S:
        wait_s = min(RECORDING_RECHECK_MAX_S, max(RECORDING_RECHECK_S, age_s / 4))
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = now + timedelta(seconds=wait_s)
        delivery.lease_until = None
        await session.commit()
        return False
    delivery.payload = {**delivery.payload, "data": {**data, "recording_url": None}}
    await session.commit()
    log.warning("webhook.recording_missing", delivery_id=delivery.id, call_id=call_id)
    return True


async def replay(
    session: AsyncSession, settings: Settings, delivery_id: int
) -> WebhookDelivery | None:
    """Send a delivery again (same event id, so receivers still de-duplicate): due now, a
    fresh 24 h window; the caller commits. None when there is no such delivery."""
    delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        return None
    now = utcnow()
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = now
    delivery.lease_until = None
    delivery.expires_at = now + timedelta(seconds=settings.webhook_max_age_s)
    return delivery
