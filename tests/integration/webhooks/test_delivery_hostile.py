"""Webhook delivery against receivers that misbehave, and the order of the end-of-call
report and its recording: a report never names a recording that is not there yet; a
receiver trickling its answer or streaming an endless body does not hold a delivery
slot; a 410 Gone is not retried for a day."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from tests.conftest import make_settings
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.models import Call, CallOutcome, Campaign, DeliveryStatus, Lead, WebhookDelivery
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow
from voicebot.recordings.calls import recording_key, store_of
from voicebot.testing.hostile_http import endless_body, serve_raw, trickle
from voicebot.testing.twilio_api_sim import serve_on_loopback
from voicebot.testing.webhook_receiver import WebhookReceiver
from voicebot.webhooks import delivery as delivery_module
from voicebot.webhooks.delivery import Dispatcher, claim_due

SECRET = "whsec_hostile_0123456789"
WAV = b"RIFF" + b"\x00" * 40
"""Stands for the stored recording: the route serves whatever bytes the store holds."""


async def _wait(predicate: Any, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the receiver is polled, it has no event
            await asyncio.sleep(0.05)


async def _ended_recorded_call(app: Any, *, streamed: bool = True) -> int:
    """A call of a recording campaign that just got its outcome (so its ``call.completed``
    report is recorded) and whose WAV is not stored yet; returns its id. ``streamed``:
    its Media Stream ran (else it was never answered)."""
    state = app.state.voicebot
    async with state.sessions() as session:
        campaign = Campaign(name="הקלטות", record=True)
        lead = Lead(phone="+972525550191", name="דנה")
        session.add_all([campaign, lead])
        await session.flush()
        now = utcnow()
        call = Call(
            call_sid="CA" + "1" * 32,
            campaign_id=campaign.id,
            lead_id=lead.id,
            status="completed" if streamed else "no-answer",
            answered_at=now if streamed else None,
            ended_at=now,
            stream_sid="MZ" + "1" * 32 if streamed else None,
        )
        session.add(call)
        await session.flush()
        outcome = CallOutcome.COMPLETED if streamed else CallOutcome.NO_ANSWER
        await record_outcome(session, call, outcome, settings=state.settings)
        await session.commit()
        return call.id


async def _store_recording(app: Any, call_id: int) -> None:
    """What save_recording does once the WAV is mixed: store it, then note its key."""
    state = app.state.voicebot
    key = recording_key(call_id)
    await store_of(state).save(key, WAV)
    async with state.sessions() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        call.recording_key, call.recorded_at = key, utcnow()
        await session.commit()


@contextlib.asynccontextmanager
async def _running_app(
    database_url: str, hooks_url: str, **overrides: Any
) -> AsyncIterator[tuple[Starlette, Settings]]:
    """The app started (lifespan) with its webhooks signed by SECRET and sent to
    ``hooks_url``/hooks; ``overrides`` are further settings."""
    settings = make_settings(
        database_url=database_url,
        webhook_url=f"{hooks_url}/hooks",
        webhook_secret=SECRET,
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app, settings


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_call_completed_waits_until_its_recording_downloads(
    database_url: str, tmp_path: Any
) -> None:
    """The report of a recorded call is recorded as the stream closes, before the WAV is
    stored: the receiver gets it only after the WAV is stored, and its recording_url
    answers 200 (not 404) the moment the event arrives."""
    receiver = WebhookReceiver(secret=SECRET)
    async with (
        serve_on_loopback(receiver.app) as hooks,
        _running_app(
            database_url,
            hooks,
            webhook_poll_interval_s=0.1,
            recording_dir=str(tmp_path / "rec"),
        ) as (app, _settings),
    ):
        call_id = await _ended_recorded_call(app)
        await asyncio.sleep(1.5)  # several dispatcher polls while the WAV is mixed
        assert receiver.of_type("call.completed") == []
        stored_at = time.monotonic()
        await _store_recording(app, call_id)
        await _wait(lambda: receiver.of_type("call.completed"), 10)
        (report,) = receiver.of_type("call.completed")
        assert receiver.received_at[report["id"]] > stored_at
        url = report["data"]["recording_url"]
        assert url.endswith(f"/api/v1/calls/{call_id}/recording")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(f"/api/v1/calls/{call_id}/recording")
        assert (response.status_code, response.content) == (200, WAV)
        # The dispatcher commits the attempt after the receiver answered: wait for that
        # commit (CI once read the row between the two and saw attempts 0).
        async with asyncio.timeout(10):
            while True:
                async with app.state.voicebot.sessions() as session:
                    row = (await session.scalars(select(WebhookDelivery))).all()
                completed = [d for d in row if d.event_type == "call.completed"]
                if all(d.delivered_at is not None for d in completed):
                    break
                await asyncio.sleep(0.05)
        assert [d.attempts for d in completed] == [1]  # waiting is not an attempt


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_recording_never_stored_is_dropped_from_the_report(
    database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recording whose save failed (or whose process died) is never stored: after the
    wait the report goes without it (recording_url null), not with a dead link."""
    monkeypatch.setattr(delivery_module, "RECORDING_WAIT_S", 1.0)
    receiver = WebhookReceiver(secret=SECRET)
    async with (
        serve_on_loopback(receiver.app) as hooks,
        _running_app(
            database_url,
            hooks,
            webhook_poll_interval_s=0.1,
            recording_dir=str(tmp_path / "rec"),
        ) as (app, _settings),
    ):
        await _ended_recorded_call(app)
        await _wait(lambda: receiver.of_type("call.completed"), 10)
    (report,) = receiver.of_type("call.completed")
    assert report["data"]["recording_url"] is None
    assert receiver.bad_signatures == 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("kind", ["trickle", "endless"])
async def test_hostile_receiver_does_not_hold_the_delivery(database_url: str, kind: str) -> None:
    """A receiver trickling its header a byte every 0.3 s (each read within the timeout)
    is cut off at WEBHOOK_TIMEOUT_S and retried later; one answering 200 with an endless
    body is delivered at once, its body never read."""
    handler = trickle(0.3) if kind == "trickle" else endless_body()
    async with (
        serve_raw(handler) as receiver,
        _running_app(
            database_url,
            receiver.base_url,
            webhook_timeout_s=1.0,
            webhook_poll_interval_s=60,  # the test claims and delivers by hand,
        ) as (app, settings),
    ):
        state = app.state.voicebot
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/api/v1/do-not-call", json={"phone": "+972525550192"})
        dispatcher = Dispatcher(settings=settings, sessions=state.sessions)
        try:
            (delivery_id,) = await _claim_until_one(state, settings)
            started = time.monotonic()
            async with asyncio.timeout(20):  # a hang fails here, not the suite
                delivered = await dispatcher.deliver(delivery_id)
            took_s = time.monotonic() - started
        finally:
            await dispatcher.aclose()
        async with state.sessions() as session:
            row = await session.get(WebhookDelivery, delivery_id)
            assert row is not None
    assert receiver.requests == 1
    if kind == "trickle":
        assert not delivered and took_s < 1.0 + 1.5
        assert row.status == DeliveryStatus.PENDING and row.last_error == "no answer in 1 s"
    else:
        assert delivered and took_s < 1.0
        assert row.status == DeliveryStatus.DELIVERED


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_unanswered_call_of_a_recording_campaign_is_reported_at_once(
    database_url: str, tmp_path: Any
) -> None:
    """A recording campaign's call that was never answered has no recording to wait for:
    its report arrives within a few polls, recording_url null (not held for a minute)."""
    receiver = WebhookReceiver(secret=SECRET)
    async with (
        serve_on_loopback(receiver.app) as hooks,
        _running_app(
            database_url,
            hooks,
            webhook_poll_interval_s=0.1,
            recording_dir=str(tmp_path / "rec"),
        ) as (app, _settings),
    ):
        await _ended_recorded_call(app, streamed=False)
        await _wait(lambda: receiver.of_type("call.completed"), 5)
    (report,) = receiver.of_type("call.completed")
    assert report["data"]["recording_url"] is None
    assert report["data"]["outcome"] == "no_answer"


async def _claim_until_one(state: Any, settings: Any) -> list[int]:
    """Claim the recorded event (the app's own dispatcher may hold it for an instant)."""
    async with asyncio.timeout(10):
        while True:
            async with state.sessions() as session:
                ids = await claim_due(session, settings)
            if ids:
                return ids
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_gone_receiver_is_not_retried(database_url: str) -> None:
    """410 Gone: the delivery is failed after one attempt (listed, replayable), not
    retried for 24 h; a 500 is retried."""
    receiver = WebhookReceiver(secret=SECRET, failing=True, fail_status=410)
    async with (
        serve_on_loopback(receiver.app) as hooks,
        _running_app(
            database_url,
            hooks,
            webhook_retry_base_s=0.2,
            webhook_poll_interval_s=0.1,
        ) as (app, _settings),
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.post("/api/v1/do-not-call", json={"phone": "+972525550193"})
            await asyncio.sleep(1.5)  # several retry periods
            (gone,) = (await client.get("/api/v1/webhooks/deliveries")).json()["items"]
            assert (gone["status"], gone["attempts"]) == ("failed", 1)
            assert gone["last_status_code"] == 410
            receiver.fail_status = 500
            await client.post("/api/v1/do-not-call", json={"phone": "+972525550194"})
            await asyncio.sleep(1.5)
            items = (await client.get("/api/v1/webhooks/deliveries")).json()["items"]
            broken = [d for d in items if d["id"] != gone["id"]]
            assert broken[0]["status"] in ("pending", "sending")
            assert broken[0]["attempts"] >= 2
