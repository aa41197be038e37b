"""What the claim checked holds at the moment of the REST call too: an attempt claimed
just before the window closes and paced past its end, or whose number was put on the
do-not-call list after the claim, is not dialed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.integration.jobs.conftest import ACCOUNT_SID, FROM_NUMBER, TOKEN
from voicebot.config import Settings
from voicebot.db.models import Campaign, CampaignAttempt, CampaignLead
from voicebot.jobs import dial
from voicebot.jobs.claims import claim_due
from voicebot.jobs.dial import DialOutcome, dial_attempt
from voicebot.jobs.pacing import LocalPacer
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_call_flow import CallBehaviour

FRIDAY_1259_IL = datetime(2026, 12, 4, 10, 59, tzinfo=UTC)  # 12:59 in Jerusalem
FRIDAY_1301_IL = datetime(2026, 12, 4, 11, 1, tzinfo=UTC)  # 13:01: the IL Friday cut-off


@pytest.fixture
def sessions(app: Starlette) -> async_sessionmaker[AsyncSession]:
    state: Any = app.state.voicebot
    made: async_sessionmaker[AsyncSession] = state.sessions
    return made


async def _claim_one(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> tuple[int, int]:
    """(campaign id, attempt id) of one lead claimed on Friday 12:59 in Jerusalem."""
    lead = await client.post(
        "/api/v1/leads", json={"phone": "+972525550123", "consent_source": "web form"}
    )
    assert lead.status_code == 201, lead.text
    body = {
        "name": "שישי",
        "calendar": "IL",
        "window_days": "sun,mon,tue,wed,thu,fri",
        "window_start": "09:00",
        "window_end": "20:00",
    }
    made = await client.post("/api/v1/campaigns", json=body)
    assert made.status_code == 201, made.text
    cid = int(made.json()["id"])
    await client.post(f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": [lead.json()["id"]]})
    async with sessions() as session:  # started (no Twilio account in this app: no sweeper)
        await session.execute(update(Campaign).where(Campaign.id == cid).values(status="running"))
        await session.commit()
        campaign = await session.get(Campaign, cid)
        assert campaign is not None
        report = await claim_due(
            session, settings=settings, campaign=campaign, owner="t", limit=5, now=FRIDAY_1259_IL
        )
    assert len(report.claimed) == 1
    return cid, report.claimed[0]


async def _dial(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, cid: int, attempt_id: int
) -> tuple[DialOutcome, int]:
    """Dial the attempt against the REST simulator: (outcome, calls created)."""
    sim = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=TOKEN, behaviour=CallBehaviour())
    async with serve_on_loopback(sim.app) as sim_url:
        placer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=TOKEN, api_base_url=sim_url)
        dial_settings = settings.model_copy(
            update={"twilio_from_number": FROM_NUMBER, "public_base_url": "http://127.0.0.1:9"}
        )
        result = await dial_attempt(
            settings=dial_settings,
            sessions=sessions,
            placer=placer,
            pacer=LocalPacer(account_cps=50.0),
            attempt_id=attempt_id,
            campaign_id=cid,
            campaign_cps=1.0,
        )
        await sim.aclose()
    return result.outcome, len(sim.creates)


async def test_claimed_before_friday_cutoff_not_dialed_after_it(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An attempt claimed on Friday 12:59 (IL) whose dial comes at 13:01 is not sent: it
    goes back to its member, due at the next opening (Sunday 09:00)."""
    cid, attempt_id = await _claim_one(client, sessions, settings)
    monkeypatch.setattr(dial, "utcnow", lambda: FRIDAY_1301_IL)
    assert await _dial(sessions, settings, cid, attempt_id) == (DialOutcome.OUTSIDE_WINDOW, 0)
    async with sessions() as session:
        attempt = await session.get(CampaignAttempt, attempt_id)
        member = (
            await session.scalars(select(CampaignLead).where(CampaignLead.campaign_id == cid))
        ).one()
    assert attempt is not None and attempt.status == "not_dialed"
    assert member.state == "pending" and member.attempts == 0
    assert member.next_attempt_at is not None
    assert member.next_attempt_at.replace(tzinfo=UTC) == datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


async def test_number_put_on_do_not_call_after_the_claim_not_dialed(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A number added to do-not-call between the claim and the send is not dialed; the
    next claim skips its member as do_not_call."""
    cid, attempt_id = await _claim_one(client, sessions, settings)
    added = await client.post("/api/v1/do-not-call", json={"phone": "+972525550123"})
    assert added.status_code == 201, added.text
    monkeypatch.setattr(dial, "utcnow", lambda: FRIDAY_1259_IL)
    assert await _dial(sessions, settings, cid, attempt_id) == (DialOutcome.DO_NOT_CALL, 0)
    async with sessions() as session:
        campaign = await session.get(Campaign, cid)
        assert campaign is not None
        await claim_due(
            session, settings=settings, campaign=campaign, owner="t", limit=5, now=FRIDAY_1259_IL
        )
        member = (
            await session.scalars(select(CampaignLead).where(CampaignLead.campaign_id == cid))
        ).one()
    assert (member.state, member.last_outcome) == ("skipped", "do_not_call")
