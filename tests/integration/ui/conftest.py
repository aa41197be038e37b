"""What the console tests share: the app with an API key, a signed-in client, seeded rows."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import make_settings
from voicebot.app import create_app
from voicebot.db.models import Call, CallTurn, Campaign, Lead, Meeting
from voicebot.db.types import utcnow

API_KEY = "console-test-key-" + "k" * 24
SECRET = "console-test-secret-" + "s" * 24
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def keyed_app(database_url: str) -> AsyncIterator[Starlette]:
    settings = make_settings(database_url=database_url, api_key=API_KEY, secret_key=SECRET)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def anonymous(keyed_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client that has not signed in."""
    transport = httpx.ASGITransport(app=keyed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page carries no CSRF token"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, key: str = API_KEY) -> httpx.Response:
    form = await client.get("/ui/sign-in")
    return await client.post(
        "/ui/sign-in", data={"api_key": key, "csrf_token": csrf_of(form.text), "next": ""}
    )


@pytest.fixture
async def operator(anonymous: httpx.AsyncClient) -> httpx.AsyncClient:
    """The same client, signed in with the API key."""
    response = await sign_in(anonymous)
    assert response.status_code == 303, response.text
    return anonymous


async def seed_call(app: Starlette) -> dict[str, Any]:
    """A campaign, a lead, a finished call with three turns (one cut) and its meeting."""
    sessions = app.state.voicebot.sessions
    now = utcnow()
    async with sessions() as session:
        campaign = Campaign(name="מבצע חורף", agent_script={"company": "ליד פלוס"})
        lead = Lead(phone="+972525550001", name="דנה כהן", company="כהן ובניו")
        session.add_all([campaign, lead])
        await session.flush()
        call = Call(
            call_sid="CA" + "1" * 32,
            lead_id=lead.id,
            campaign_id=campaign.id,
            status="completed",
            to_number=lead.phone,
            started_at=now - timedelta(minutes=3),
            answered_at=now - timedelta(minutes=3),
            ended_at=now - timedelta(minutes=1),
            duration_s=120,
            outcome="meeting_booked",
            summary="נקבעה פגישת היכרות ליום חמישי",
        )
        session.add(call)
        await session.flush()
        latency = {"endpoint": 700, "stt": 180, "llm_first_token": 420, "tts_first_byte": 150,
                   "first_frame": 20, "total": 1470}  # fmt: skip
        session.add_all(
            [
                CallTurn(call_id=call.id, seq=1, role="assistant", text="היי דנה, כאן נועה",
                         latency={"total": 5}),
                CallTurn(call_id=call.id, seq=2, role="user", text="כן, אפשר לדבר"),
                CallTurn(call_id=call.id, seq=3, role="assistant", text="מעולה, בקצרה: יש לנו",
                         interrupted=True, latency=latency),
            ]
        )  # fmt: skip
        start = (now + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
        session.add(
            Meeting(
                lead_id=lead.id,
                call_id=call.id,
                start_at=start,
                end_at=start + timedelta(minutes=30),
                duration_min=30,
            )
        )
        await session.commit()
        return {"call_id": call.id, "lead_id": lead.id, "campaign_id": campaign.id,
                "meeting_at": start}  # fmt: skip
