"""Campaign dialing against the real database and the Twilio REST simulator."""

from __future__ import annotations

from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.jobs.conftest import TZ, dial_once, start_campaign
from voicebot.config import Settings
from voicebot.db.models import Call, CampaignLead
from voicebot.testing.twilio_api_sim import TwilioApiSimulator


async def test_dials_due_leads_within_caps_and_skips_dnc(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """Two of three leads are dialled (cap 2); a number put on do-not-call later is skipped."""
    sim, url = twilio
    cid = await start_campaign(
        client, ["054-4567890", "052-5551234", "03-5551234"], max_concurrent_calls=2
    )
    await client.post("/api/v1/do-not-call", json={"phone": "054-4567890"})
    report = await dial_once(settings, sessions, url, cid)
    assert len(report.skipped_dnc) == 1
    assert len(report.placed) == 1
    assert len(sim.calls) == 1
    async with sessions() as session:
        calls = (await session.scalars(select(Call))).all()
        states = sorted(m.state for m in (await session.scalars(select(CampaignLead))).all())
    assert [c.call_sid is not None for c in calls] == [True]
    assert states == ["dialing", "pending", "skipped"]


async def test_nothing_is_dialled_outside_calling_hours(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """On Saturday (Shabbat) no call is placed."""
    sim, url = twilio
    cid = await start_campaign(client, ["052-5551234"])
    report = await dial_once(
        settings, sessions, url, cid, now=datetime(2030, 1, 5, 11, 0, tzinfo=TZ)
    )
    assert report.outside_window
    assert sim.calls == {} or len(sim.calls) == 0


async def test_failed_dial_is_retried_later_then_fails(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    twilio: tuple[TwilioApiSimulator, str],
) -> None:
    """A rejected dial schedules a retry after the delay; at max attempts the lead fails."""
    _, url = twilio
    cid = await start_campaign(client, ["052-5551234"], max_attempts=1)
    report = await dial_once(settings, sessions, url, cid, auth_token="wrong")
    assert len(report.failed) == 1
    async with sessions() as session:
        member = (await session.scalars(select(CampaignLead))).one()
    assert member.state == "failed"
    assert report.campaign_done
