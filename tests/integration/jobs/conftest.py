"""What the campaign-dialing tests share: the Twilio REST simulator, a started campaign,
and one dialing pass through the real TwilioDialer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from voicebot.api.state import app_state
from voicebot.config import Settings
from voicebot.jobs.dialing import DialReport, dial_due
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

ACCOUNT_SID = "AC" + "d" * 32
TOKEN = "dial-token"
FROM_NUMBER = "+97233720000"
TZ = ZoneInfo("Asia/Jerusalem")
SUNDAY_11 = datetime(2030, 1, 6, 11, 0, tzinfo=TZ)  # inside the default calling window


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[TwilioApiSimulator, str]]:
    sim = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=TOKEN)
    async with serve_on_loopback(sim.app) as url:
        yield sim, url


@pytest.fixture
def sessions(app: Starlette) -> async_sessionmaker[AsyncSession]:
    return app_state(type("C", (), {"app": app})()).sessions  # type: ignore[arg-type]


async def start_campaign(client: httpx.AsyncClient, phones: list[str], **extra: object) -> int:
    """A running campaign over new leads with these phones."""
    ids = [(await client.post("/api/v1/leads", json={"phone": p})).json()["id"] for p in phones]
    cid = (await client.post("/api/v1/campaigns", json={"name": "חורף", **extra})).json()["id"]
    await client.post(f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": ids})
    assert (await client.post(f"/api/v1/campaigns/{cid}/start")).status_code == 200
    return int(cid)


async def dial_once(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    api_url: str,
    campaign_id: int,
    *,
    auth_token: str = TOKEN,
    now: datetime = SUNDAY_11,
) -> DialReport:
    """One dialing pass at ``now`` through a real TwilioDialer (``auth_token`` wrong = refused)."""
    dialer = TwilioDialer(account_sid=ACCOUNT_SID, auth_token=auth_token, api_base_url=api_url)
    try:
        return await dial_due(
            settings=settings.model_copy(update={"twilio_from_number": FROM_NUMBER}),
            sessions=sessions,
            dialer=dialer,
            campaign_id=campaign_id,
            now=now,
        )
    finally:
        dialer.close()
