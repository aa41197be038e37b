"""Campaign dialing against the real database and the Twilio REST simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from voicebot.api.state import app_state
from voicebot.config import Settings
from voicebot.db.models import Call, CampaignLead
from voicebot.jobs.dialing import dial_due
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

ACCOUNT_SID = "AC" + "d" * 32
TOKEN = "dial-token"
TZ = ZoneInfo("Asia/Jerusalem")
# A Sunday at 11:00 in Israel: inside the default calling window.
SUNDAY_11 = datetime(2030, 1, 6, 11, 0, tzinfo=TZ)


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioApiSimulator, str]]:
    sim = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=TOKEN)
    async with serve_on_loopback(sim.app) as url:
        yield sim, url


async def _campaign(client: httpx.AsyncClient, phones: list[str], **extra: object) -> int:
    ids = [(await client.post("/api/v1/leads", json={"phone": p})).json()["id"] for p in phones]
    cid = (await client.post("/api/v1/campaigns", json={"name": "חורף", **extra})).json()["id"]
    await client.post(f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": ids})
    assert (await client.post(f"/api/v1/campaigns/{cid}/start")).status_code == 200
    return int(cid)


async def test_dials_due_leads_within_caps_and_skips_dnc(
    client: httpx.AsyncClient,
    app: object,
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """Two of three leads are dialled (cap 2); a number put on do-not-call later is skipped."""
    sim, url = twilio
    cid = await _campaign(
        client, ["054-4567890", "052-5551234", "03-5551234"], max_concurrent_calls=2
    )
    await client.post("/api/v1/do-not-call", json={"phone": "054-4567890"})
    state = app_state(type("C", (), {"app": app})())  # type: ignore[arg-type]
    dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=TOKEN, api_base_url=url)
    report = await dial_due(
        settings=settings.model_copy(update={"twilio_from_number": "+97233720000"}),
        sessions=state.sessions,
        dialer=dialer,
        campaign_id=cid,
        now=SUNDAY_11,
    )
    assert len(report.skipped_dnc) == 1
    assert len(report.placed) == 1
    assert len(sim.calls) == 1
    async with state.sessions() as session:
        calls = (await session.scalars(select(Call))).all()
        states = sorted(m.state for m in (await session.scalars(select(CampaignLead))).all())
    assert [c.call_sid is not None for c in calls] == [True]
    assert states == ["dialing", "pending", "skipped"]


async def test_nothing_is_dialled_outside_calling_hours(
    client: httpx.AsyncClient,
    app: object,
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """On Saturday (Shabbat) no call is placed."""
    sim, url = twilio
    cid = await _campaign(client, ["052-5551234"])
    state = app_state(type("C", (), {"app": app})())  # type: ignore[arg-type]
    dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=TOKEN, api_base_url=url)
    report = await dial_due(
        settings=settings,
        sessions=state.sessions,
        dialer=dialer,
        campaign_id=cid,
        now=datetime(2030, 1, 5, 11, 0, tzinfo=TZ),
    )
    assert report.outside_window
    assert sim.calls == {} or len(sim.calls) == 0


async def test_failed_dial_is_retried_later_then_fails(
    client: httpx.AsyncClient,
    app: object,
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """A rejected dial schedules a retry after the delay; at max attempts the lead fails."""
    _, url = twilio
    cid = await _campaign(client, ["052-5551234"], max_attempts=1)
    state = app_state(type("C", (), {"app": app})())  # type: ignore[arg-type]
    dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token="wrong", api_base_url=url)
    report = await dial_due(
        settings=settings, sessions=state.sessions, dialer=dialer, campaign_id=cid, now=SUNDAY_11
    )
    assert len(report.failed) == 1
    async with state.sessions() as session:
        member = (await session.scalars(select(CampaignLead))).one()
    assert member.state == "failed"
    assert report.campaign_done
