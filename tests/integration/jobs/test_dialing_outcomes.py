"""Campaign dialing asks Twilio to wait for a machine's beep, a dial that fails gives the
call the `failed` outcome and the lead `unreachable`, and a call's outcome frees its
campaign slot (retry, done, campaign completed) — on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from voicebot.api.state import app_state
from voicebot.config import Settings
from voicebot.db.models import Call, CallOutcome, CampaignLead, Lead
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow
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


async def _placed_call(
    client: httpx.AsyncClient, app: Starlette, settings: Settings, url: str, phone: str
) -> tuple[int, async_sessionmaker[AsyncSession]]:
    cid = await _campaign(client, phone)
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
    return cid, state.sessions


async def _end_call(sessions: async_sessionmaker[AsyncSession], outcome: CallOutcome) -> None:
    async with sessions() as session:
        call = (await session.scalars(select(Call).order_by(Call.id.desc()))).first()
        assert call is not None
        await record_outcome(session, call, outcome)
        await session.commit()


async def _member(sessions: async_sessionmaker[AsyncSession]) -> CampaignLead:
    async with sessions() as session:
        return (await session.scalars(select(CampaignLead))).one()


async def test_unanswered_call_frees_its_slot_for_a_retry(
    client: httpx.AsyncClient,
    app: Starlette,
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """A no-answer puts the member back in line for a retry after retry_delay_min, instead
    of holding a concurrency slot for ever."""
    _, url = twilio
    _, sessions = await _placed_call(client, app, settings, url, "052-5551234")
    assert (await _member(sessions)).state == "dialing"
    await _end_call(sessions, CallOutcome.NO_ANSWER)
    member = await _member(sessions)
    assert (member.state, member.last_outcome) == ("retry", "no_answer")
    assert member.next_attempt_at is not None and member.next_attempt_at > utcnow()


async def test_a_booked_meeting_completes_the_campaign(
    client: httpx.AsyncClient,
    app: Starlette,
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """After the only lead books, the member is done and the next pass completes the campaign."""
    _, url = twilio
    cid, sessions = await _placed_call(client, app, settings, url, "052-5551234")
    await _end_call(sessions, CallOutcome.MEETING_BOOKED)
    assert (await _member(sessions)).state == "done"
    dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=TOKEN, api_base_url=url)
    report = await dial_due(
        settings=settings, sessions=sessions, dialer=dialer, campaign_id=cid, now=SUNDAY_11
    )
    dialer.close()
    assert report.campaign_done and not report.placed
