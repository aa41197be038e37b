"""Signed webhooks end to end: events recorded with their change reach a receiver that
verifies every signature, each exactly once after de-duplication, even after the
receiver was down for a minute; the delivery log lists them and replays one."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings
from tests.integration.api.test_meetings import next_business_day_at
from voicebot.app import create_app
from voicebot.testing.twilio_api_sim import loopback_socket, serve_on_loopback
from voicebot.testing.webhook_receiver import WebhookReceiver

SECRET = "whsec_test_0123456789abcdef"
DOWN_S = 60.0
"""How long the receiver is down (not listening) before it comes up."""


async def _served_app(database_url: str, url: str, **overrides: Any) -> Any:
    settings = make_settings(
        database_url=database_url,
        webhook_url=url,
        webhook_secret=SECRET,
        webhook_retry_base_s=0.5,
        webhook_retry_max_s=4.0,
        webhook_poll_interval_s=0.2,
        **overrides,
    )
    return create_app(settings)


async def _events(client: httpx.AsyncClient, phones: list[str]) -> None:
    """Two opt-outs and a booked meeting through the API: three events."""
    for phone in phones:
        await client.post("/api/v1/do-not-call", json={"phone": phone, "reason": "ביקש"})
    lead = (
        await client.post("/api/v1/leads", json={"phone": "054-777-1234", "name": "דנה"})
    ).json()
    start = next_business_day_at(11).isoformat()
    response = await client.post("/api/v1/meetings", json={"lead_id": lead["id"], "start": start})
    assert response.status_code == 201, response.text


async def _wait(predicate: Any, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the receiver is polled, it has no event
            await asyncio.sleep(0.1)


async def _log_until(
    client: httpx.AsyncClient, query: str, count: int, timeout_s: float
) -> list[dict[str, Any]]:
    """The delivery log's items for ``query`` once there are ``count`` of them."""
    async with asyncio.timeout(timeout_s):
        while True:
            items: list[dict[str, Any]] = (
                await client.get(f"/api/v1/webhooks/deliveries{query}")
            ).json()["items"]
            if len(items) >= count:
                return items
            await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "database_url",
    # A minute of real waiting per database: the SQLite twin runs in the full suite only
    # (make test covers delivery on SQLite in this file's other tests).
    [
        pytest.param("postgres", marks=pytest.mark.integration),
        pytest.param("sqlite", marks=pytest.mark.full),
    ],
    indirect=True,
)
async def test_receiver_down_for_a_minute_still_gets_every_event_once(database_url: str) -> None:
    """The receiver refuses connections for DOWN_S; with backoff every event arrives
    afterwards, signatures verify, each event is kept exactly once."""
    receiver = WebhookReceiver(secret=SECRET)
    sock = loopback_socket()  # bound, not listening: connections are refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    app = await _served_app(database_url, url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await _events(client, ["+972525550101", "+972525550102"])
            await asyncio.sleep(DOWN_S)
            log = (await client.get("/api/v1/webhooks/deliveries")).json()["items"]
            assert len(log) == 3
            assert all(d["status"] in ("pending", "sending") and d["attempts"] >= 3 for d in log)
            assert all(d["last_error"] for d in log if d["status"] == "pending")
            async with serve_on_loopback(receiver.app, sock):
                await _wait(lambda: len(receiver.events) == 3, 30)
                delivered = await _log_until(client, "?status=delivered", 3, 10)
            assert all(d["attempts"] >= 4 for d in delivered)
            assert receiver.bad_signatures == 0 and receiver.duplicates == 0
            types = sorted(e["type"] for e in receiver.events.values())
            assert types == ["lead.opted_out", "lead.opted_out", "meeting.booked"]
            (meeting,) = receiver.of_type("meeting.booked")
            assert meeting["data"]["lead"]["name"] == "דנה"


async def test_replay_resends_the_same_event_id(database_url: str) -> None:
    """A replayed delivery reaches the receiver again with the same event id: the
    receiver drops it as a duplicate; the log shows one more attempt."""
    receiver = WebhookReceiver(secret=SECRET)
    async with serve_on_loopback(receiver.app) as base:
        app = await _served_app(database_url, f"{base}/hooks")
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.post("/api/v1/do-not-call", json={"phone": "+972525550103"})
                await _wait(lambda: len(receiver.events) == 1, 10)
                (delivery,) = await _log_until(client, "?status=delivered", 1, 10)
                response = await client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay")
                assert response.status_code == 202
                await _wait(lambda: receiver.duplicates == 1, 10)
                assert len(receiver.events) == 1
                missing = await client.post("/api/v1/webhooks/deliveries/999999/replay")
                assert missing.status_code == 404


async def test_expired_event_fails_and_a_replay_delivers_it(database_url: str) -> None:
    """An event refused past its max age is ``failed`` (no more attempts); a replay
    after the receiver is fixed delivers it."""
    receiver = WebhookReceiver(secret=SECRET, failing=True)
    async with serve_on_loopback(receiver.app) as base:
        app = await _served_app(database_url, f"{base}/hooks", webhook_max_age_s=1.0)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.post("/api/v1/do-not-call", json={"phone": "+972525550104"})

                failed: list[dict[str, Any]] = []

                async def poll() -> None:
                    while not failed:
                        body = (
                            await client.get("/api/v1/webhooks/deliveries?status=failed")
                        ).json()
                        failed.extend(body["items"])
                        await asyncio.sleep(0.1)

                await asyncio.wait_for(poll(), 15)
                assert failed[0]["last_status_code"] == 503
                receiver.failing = False
                await client.post(f"/api/v1/webhooks/deliveries/{failed[0]['id']}/replay")
                await _wait(lambda: len(receiver.events) == 1, 10)
                await _log_until(client, "?status=delivered", 1, 10)
