"""SMS meeting confirmations through the Twilio simulator's Messages resource: one per
meeting with its delivery status recorded, never to a do-not-call number."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import make_settings
from tests.integration.api.test_meetings import next_business_day_at
from voicebot.app import create_app
from voicebot.db.models import SmsMessage
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

ACCOUNT_SID = "AC" + "9" * 32
TOKEN = "sms-token"
FROM = "+97233720009"


@pytest.fixture
async def rig(
    database_url: str,
) -> AsyncIterator[tuple[Any, TwilioApiSimulator, httpx.AsyncClient]]:
    sim = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=TOKEN)
    async with serve_on_loopback(sim.app) as sim_url:
        # The simulator calls the status callback on the app, served on loopback too.
        from voicebot.testing.twilio_api_sim import loopback_socket

        sock = loopback_socket()
        public = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = make_settings(
            database_url=database_url,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=TOKEN,
            twilio_from_number=FROM,
            twilio_api_base_url=sim_url,
            public_base_url=public,
            webhook_poll_interval_s=0.1,
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            serve_on_loopback(app, sock),
            httpx.AsyncClient(base_url=public) as client,
        ):
            yield app, sim, client
        await sim.aclose()


async def _sms_rows(app: Any) -> list[SmsMessage]:
    async with app.state.voicebot.sessions() as session:
        return list((await session.scalars(select(SmsMessage).order_by(SmsMessage.id))).all())


async def _book(client: httpx.AsyncClient, phone: str, hour: int) -> int:
    created = await client.post("/api/v1/leads", json={"phone": phone, "name": "דנה"})
    assert created.status_code == 201, created.text
    lead = created.json()
    start = next_business_day_at(hour).isoformat()
    response = await client.post("/api/v1/meetings", json={"lead_id": lead["id"], "start": start})
    assert response.status_code == 201, response.text
    return int(lead["id"])


async def test_one_sms_per_meeting_with_its_status(rig: Any) -> None:
    """A booked meeting gets one Hebrew SMS; sent then delivered are recorded."""
    app, sim, client = rig
    await _book(client, "054-456-2233", 11)
    async with asyncio.timeout(15):
        while not (rows := await _sms_rows(app)) or rows[0].status != "delivered":  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    (message,) = sim.messages
    assert message.to == "+972544562233" and message.from_ == FROM
    assert message.body.startswith("שלום דנה, נקבעה לנו פגישה ל")
    (row,) = rows
    assert row.message_sid == message.sid
    assert row.status_events == ["sent", "delivered"]
    await asyncio.sleep(0.5)
    assert len(sim.messages) == 1


async def test_do_not_call_number_is_never_texted(rig: Any) -> None:
    """A lead on do-not-call who has a meeting booked gets no SMS: the row is skipped."""
    app, sim, client = rig
    await client.post("/api/v1/do-not-call", json={"phone": "054-456-2244"})
    await _book(client, "054-456-2244", 12)
    await asyncio.sleep(1.0)
    (row,) = await _sms_rows(app)
    assert (row.status, row.error) == ("skipped", "do not call")
    assert sim.messages == []
