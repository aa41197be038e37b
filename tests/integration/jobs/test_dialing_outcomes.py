"""Campaign dialing asks Twilio to wait for a machine's beep, a dial that fails gives the
call the `failed` outcome and the lead `unreachable`, and a call's outcome frees its
campaign slot (retry, done, campaign completed) — on both databases."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.jobs.conftest import dial_once, start_campaign
from voicebot.config import Settings
from voicebot.db.models import Call, CallOutcome, CampaignLead, Lead
from voicebot.db.outcomes import record_outcome
from voicebot.db.types import utcnow
from voicebot.testing.twilio_api_sim import TwilioApiSimulator

PHONE = "052-5551234"


async def test_dial_requests_detect_message_end(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """The create request carries MachineDetection=DetectMessageEnd and no async AMD, so the
    voice webhook itself gets AnsweredBy after the beep."""
    sim, url = twilio
    report = await dial_once(settings, sessions, url, await start_campaign(client, [PHONE]))
    assert len(report.placed) == 1
    (call,) = sim.calls.values()
    assert call.machine_detection == "DetectMessageEnd"
    assert sim.requests[0].value("AsyncAmd") is None


async def test_failed_dial_records_outcome_and_lead_status(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """A dial Twilio refuses stores outcome `failed` and moves a new lead to unreachable."""
    _, url = twilio
    cid = await start_campaign(client, [PHONE])
    await dial_once(settings, sessions, url, cid, auth_token="wrong")
    async with sessions() as session:
        call = (await session.scalars(select(Call))).one()
        lead = (await session.scalars(select(Lead))).one()
    assert (call.status, call.outcome) == ("failed", "failed")
    assert lead.status == "unreachable"


async def _placed_call(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    url: str,
) -> int:
    cid = await start_campaign(client, [PHONE])
    report = await dial_once(settings, sessions, url, cid)
    assert len(report.placed) == 1
    return cid


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
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """A no-answer puts the member back in line for a retry after retry_base_min, instead
    of holding a concurrency slot for ever."""
    await _placed_call(client, sessions, settings, twilio[1])
    assert (await _member(sessions)).state == "dialing"
    await _end_call(sessions, CallOutcome.NO_ANSWER)
    member = await _member(sessions)
    assert (member.state, member.last_outcome) == ("retry", "no_answer")
    assert member.next_attempt_at is not None and member.next_attempt_at > utcnow()


async def test_a_booked_meeting_completes_the_campaign(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """After the only lead books, the member is done and the next pass completes the campaign."""
    cid = await _placed_call(client, sessions, settings, twilio[1])
    await _end_call(sessions, CallOutcome.MEETING_BOOKED)
    assert (await _member(sessions)).state == "done"
    report = await dial_once(settings, sessions, twilio[1], cid)
    assert report.campaign_done and not report.placed
