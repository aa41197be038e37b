"""What the campaign-engine tests share: the app served on a loopback port (so the
Twilio simulator can call it back), the simulator with a call behaviour, campaigns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from tests.conftest import make_settings
from voicebot.api.state import AppState
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.testing.twilio_api_sim import (
    TwilioApiSimulator,
    loopback_socket,
    serve_on_loopback,
)
from voicebot.testing.twilio_call_flow import CallBehaviour

ACCOUNT_SID = "AC" + "d" * 32
TOKEN = "dial-token"
FROM_NUMBER = "+97233720000"
ALWAYS_OPEN: dict[str, Any] = {
    "calendar": "none",
    "window_days": "sun,mon,tue,wed,thu,fri,sat",
    "window_start": "00:00",
    "window_end": "24:00",
}
"""Window fields that keep the calling window open (calendar cases are a2's tests)."""


@dataclass
class Engine:
    """A served app with its sweeper, the simulator it dials, and an API client."""

    app: Starlette
    sim: TwilioApiSimulator
    client: httpx.AsyncClient
    settings: Settings

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.voicebot
        return state

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.state.sessions

    async def wait_for(
        self, predicate: Callable[[], Awaitable[bool]], timeout_s: float = 30.0
    ) -> None:
        async with asyncio.timeout(timeout_s):
            # Polls the database and the API: no event to wait on across processes.
            while not await predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.1)

    async def stats(self, campaign_id: int) -> dict[str, Any]:
        body: dict[str, Any] = (
            await self.client.get(f"/api/v1/campaigns/{campaign_id}/stats")
        ).json()
        return body


EngineFactory = Callable[..., Any]


@pytest.fixture
def engine_factory(database_url: str) -> EngineFactory:
    """Build an :class:`Engine` (an async context manager) with a call behaviour and
    settings overrides; the app's own sweeper dials (embedded default)."""

    def build(behaviour: CallBehaviour | None = None, **overrides: Any) -> Any:
        return _engine(database_url, behaviour or CallBehaviour(), overrides)

    return build


class _engine:
    def __init__(self, database_url: str, behaviour: CallBehaviour, overrides: dict[str, Any]):
        self.database_url = database_url
        self.behaviour = behaviour
        self.overrides = overrides
        self._stack: Any = None

    async def __aenter__(self) -> Engine:
        import contextlib

        self._stack = contextlib.AsyncExitStack()
        stack = self._stack
        sim = TwilioApiSimulator(
            account_sid=ACCOUNT_SID, auth_token=TOKEN, behaviour=self.behaviour
        )
        sim_url = await stack.enter_async_context(serve_on_loopback(sim.app))
        stack.push_async_callback(sim.aclose)
        sock = loopback_socket()
        public = f"http://127.0.0.1:{sock.getsockname()[1]}"
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": TOKEN,
            "twilio_from_number": FROM_NUMBER,
            "twilio_api_base_url": sim_url,
            "public_base_url": public,
            "twilio_cps": 50.0,
            "campaign_sweep_interval_s": 0.2,
            "campaign_reconcile_after_s": 1.0,
            "campaign_dial_settle_s": 1.0,
            "campaign_lease_s": 2.0,
        }
        values.update(self.overrides)
        settings = make_settings(**values)
        app = create_app(settings)
        await stack.enter_async_context(app.router.lifespan_context(app))
        await stack.enter_async_context(serve_on_loopback(app, sock))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=public, timeout=10.0))
        return Engine(app=app, sim=sim, client=client, settings=settings)

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()


async def new_campaign(
    client: httpx.AsyncClient, phones: list[str], *, consent: bool = True, **fields: Any
) -> int:
    """A draft campaign over new leads with these phones (with consent unless told)."""
    ids = []
    for phone in phones:
        lead: dict[str, Any] = {"phone": phone}
        if consent:
            lead["consent_source"] = "web form"
        response = await client.post("/api/v1/leads", json=lead)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    body = {"name": "חורף", **ALWAYS_OPEN, **fields}
    response = await client.post("/api/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    cid = int(response.json()["id"])
    await client.post(f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": ids})
    return cid


def phones(count: int, start: int = 0) -> list[str]:
    """Distinct Israeli mobile numbers."""
    return [f"+97252{5550000 + start + i:07d}" for i in range(count)]
