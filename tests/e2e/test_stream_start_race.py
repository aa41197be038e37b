"""Two `start` messages for one call at once (two sockets with the same stream token):
exactly one stream gets the call, the other is closed with 1008; no server error is
logged, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import answer_call, call_server_settings
from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import (
    SIGNATURE_HEADER,
    TWILIO_USER_AGENT,
    open_stream,
)

ACCOUNT_SID = "AC" + "6" * 32
AUTH_TOKEN = "stream-race-auth-token"
CALL_SID = "CA" + "c" * 32


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=11)) as running:
        yield running


@pytest.fixture
async def server(
    database_url: str, tmp_path: Path, sim: ProviderSim
) -> AsyncIterator[tuple[str, Settings]]:
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        database_url=database_url,
    )
    async with running_server(settings, port=port) as base:
        yield base, settings


async def _answer(base: str) -> tuple[str, dict[str, str]]:
    return await answer_call(
        base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=CALL_SID
    )


async def test_two_starts_at_once_give_the_call_to_one_stream(
    server: tuple[str, Settings],
) -> None:
    """Both sockets send `start` together: one hears the greeting, the other is closed
    with 1008 and hears nothing; the row names the winner's stream."""
    base, settings = server
    stream_url, parameters = await _answer(base)
    async with contextlib.AsyncExitStack() as stack:
        calls = await asyncio.gather(
            *(
                stack.enter_async_context(
                    open_stream(
                        base,
                        stream_url=stream_url,
                        parameters=parameters,
                        call_sid=CALL_SID,
                        account_sid=ACCOUNT_SID,
                        auth_token=AUTH_TOKEN,
                    )
                )
                for _ in range(2)
            )
        )
        for call in calls:
            await call.wait_until(
                lambda c=call: c.ended or c.metrics.first_agent_media_ms is not None, 10
            )
        winners = [c for c in calls if not c.ended]
        losers = [c for c in calls if c.ended]
        assert len(winners) == 1, [(c.ended, c.close_code) for c in calls]
        assert losers[0].close_code == 1008
        assert losers[0].metrics.first_agent_media_ms is None
        # The winner took the webhook's hand-over: its claim commits beside the greeting.
        engine = create_engine(settings)
        try:
            for _ in range(50):
                async with create_sessionmaker(engine)() as db:
                    row = (await db.scalars(select(Call))).one()
                if row.stream_sid is not None:
                    break
                await asyncio.sleep(0.05)
        finally:
            await engine.dispose()
        assert row.stream_sid == winners[0].stream_sid


async def test_a_start_after_the_call_completed_is_refused(
    server: tuple[str, Settings],
) -> None:
    """Twilio's `completed` came first (the caller hung up as the stream connected): a
    `start` that follows with the call's token gets no session and no greeting."""
    base, settings = server
    stream_url, parameters = await _answer(base)
    form = {"AccountSid": ACCOUNT_SID, "CallSid": CALL_SID, "CallStatus": "completed"}
    url = base + "/twilio/status"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    headers = {SIGNATURE_HEADER: signature, "User-Agent": TWILIO_USER_AGENT}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(url, data=form, headers=headers)
    assert response.status_code == httpx.codes.NO_CONTENT
    async with open_stream(
        base,
        stream_url=stream_url,
        parameters=parameters,
        call_sid=CALL_SID,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
    ) as call:
        await call.wait_until(
            lambda: call.ended or call.metrics.first_agent_media_ms is not None, 10
        )
        assert call.ended and call.close_code == 1008
        assert call.metrics.first_agent_media_ms is None
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            row = (await db.scalars(select(Call))).one()
    finally:
        await engine.dispose()
    assert (row.status, row.stream_sid) == ("completed", None)
