"""Campaign dialing asks Twilio to wait for a machine's beep, and a dial that fails gives
the call the `failed` outcome and the lead `unreachable`, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from voicebot.api.state import app_state
from voicebot.config import Settings
from voicebot.db.models import Call, Lead
from voicebot.jobs.dialing import dial_due
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

ACCOUNT_SID = "AC" + "e" * 32
TOKEN = "dial-outcome-token"
TZ = ZoneInfo("Asia/Jerusalem")
SUNDAY_11 = datetime(2030, 1, 6, 11, 0, tzinfo=TZ)  # inside the default calling window


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioApiSimulator, str]]:
    sim = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=TOKEN)
    async with serve_on_loopback(sim.app) as url:
        yield sim, url


async def _campaign(client: httpx.AsyncClient, phone: str) -> int:
    lead_id = (await client.post("/api/v1/leads", json={"phone": phone})).json()["id"]
    cid = (await client.post("/api/v1/campaigns", json={"name": "חורף"})).json()["id"]
    await client.post(f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": [lead_id]})
    assert (await client.post(f"/api/v1/campaigns/{cid}/start")).status_code == 200
    return int(cid)


async def test_dial_requests_detect_message_end(
    client: httpx.AsyncClient,
    app: Starlette,
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """The create request carries MachineDetection=DetectMessageEnd and no async AMD, so the
    voice webhook itself gets AnsweredBy after the beep."""
    sim, url = twilio
    cid = await _campaign(client, "052-5551234")
    state = app_state(type("C", (), {"app": app})())  # type: ignore[arg-type]
    dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=TOKEN, api_base_url=url)
    report = await dial_due(
        settings=settings.model_copy(update={"twilio_from_number": "+97233720000"}),
        sessions=state.sessions,
        dialer=dialer,
        campaign_id=cid,
        now=SUNDAY_11,
    )
    dialer.close()
    assert len(report.placed) == 1
    (call,) = sim.calls.values()
    assert call.machine_detection == "DetectMessageEnd"
    assert sim.requests[0].value("AsyncAmd") is None


async def test_failed_dial_records_outcome_and_lead_status(
    client: httpx.AsyncClient,
    app: Starlette,
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """A dial Twilio refuses stores outcome `failed` and moves a new lead to unreachable."""
    _, url = twilio
    cid = await _campaign(client, "052-5551234")
    state = app_state(type("C", (), {"app": app})())  # type: ignore[arg-type]
    dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token="wrong", api_base_url=url)
    await dial_due(
        settings=settings, sessions=state.sessions, dialer=dialer, campaign_id=cid, now=SUNDAY_11
    )
    dialer.close()
    async with state.sessions() as session:
        call = (await session.scalars(select(Call))).one()
        lead = (await session.scalars(select(Lead))).one()
    assert (call.status, call.outcome) == ("failed", "failed")
    assert lead.status == "unreachable"
