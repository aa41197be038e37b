"""A campaign start never waits on the broker: the nudge is sent off the event loop, and a
nudge the broker fails or stalls on is harmless (the sweeper is the source of truth)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import make_settings
from tests.integration.jobs.conftest import ACCOUNT_SID, FROM_NUMBER, TOKEN, new_campaign, phones
from voicebot.app import create_app
from voicebot.cli import migrate
from voicebot.jobs.actors import Jobs
from voicebot.jobs.broker import BROKER_CONNECT_TIMEOUT_S, BROKER_SOCKET_TIMEOUT_S
from voicebot.jobs.nudger import Nudger

SCHEMES = ["redis://127.0.0.1:{port}/0", "amqp://u:p@127.0.0.1:{port}/%2F"]
PROMPT_S = 2.0
"""A start/resume answers within this, however the broker behaves (it blocked ~5 s:
the broker's socket timeout)."""
TICK_S = 0.01
LOOP_STALL_MAX_S = 1.5
"""The longest a ticking task may wait for the loop meanwhile (a loaded machine's slack;
a send on the loop held it for the broker's socket timeout, 2-5 s)."""
SEND_GIVE_UP_S = BROKER_CONNECT_TIMEOUT_S + BROKER_SOCKET_TIMEOUT_S + 5.0


def _closed_port() -> int:
    """A loopback port nothing listens on: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def app_for(tmp_path: Path) -> Any:
    """An app (lifespan entered) whose broker is at ``broker_url``; it can dial in
    principle (Twilio settings present) but no worker consumes the broker."""

    @contextlib.asynccontextmanager
    async def build(broker_url: str) -> AsyncIterator[Starlette]:
        settings = make_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'nudge.db'}",
            broker_url=broker_url,
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=TOKEN,
            twilio_from_number=FROM_NUMBER,
            # Loopback both ways (as with the REST simulator): the start is not refused.
            public_base_url="http://127.0.0.1:8000",
            twilio_api_base_url=f"http://127.0.0.1:{_closed_port()}",
        )
        migrate(settings)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield app

    return build


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=30.0
    )


def _jobs(app: Starlette) -> Jobs:
    jobs: Jobs = app.state.voicebot.extras["jobs"]
    return jobs


async def _timed(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float, float]:
    """POST ``path`` while a task ticks every TICK_S: (response, seconds, worst tick gap)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with asyncio.TaskGroup() as group:
        group.create_task(tick())
        await asyncio.sleep(TICK_S * 3)
        started = time.monotonic()
        try:
            response = await client.post(path)
        finally:
            elapsed = time.monotonic() - started
            await asyncio.sleep(TICK_S * 3)
            done.set()
    return response, elapsed, max(gaps)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_start_with_a_stalled_broker_does_not_hold_the_loop(
    app_for: Any, black_hole: int, scheme: str
) -> None:
    """Start and resume answer promptly and a concurrent task keeps ticking while the
    broker accepts connections and never answers; the stalled nudge fails later, alone."""
    async with app_for(scheme.format(port=black_hole)) as app:
        jobs = _jobs(app)
        assert jobs.nudger is not None and not jobs.embedded
        async with _client(app) as client:
            cid = await new_campaign(client, phones(2))
            start, start_s, start_gap_s = await _timed(client, f"/api/v1/campaigns/{cid}/start")
            assert start.status_code == 200, start.text
            assert start.json()["status"] == "running"
            assert jobs.nudger.in_flight  # the send really is stuck on the stalled broker
            assert (await client.post(f"/api/v1/campaigns/{cid}/pause")).status_code == 200
            resume, resume_s, resume_gap_s = await _timed(client, f"/api/v1/campaigns/{cid}/resume")
            assert resume.status_code == 200, resume.text
        assert start_s < PROMPT_S and resume_s < PROMPT_S, (start_s, resume_s)
        assert max(start_gap_s, resume_gap_s) < LOOP_STALL_MAX_S, (start_gap_s, resume_gap_s)
        # The stalled send gives up within the broker's bounds; the waiting nudge (the
        # resume's) is tried once more, not once per request.
        assert await asyncio.to_thread(jobs.nudger.join, SEND_GIVE_UP_S * 2)
        assert jobs.nudger.failed in (1, 2) and jobs.nudger.sent == 0


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_start_with_a_broker_down_is_running(app_for: Any, scheme: str) -> None:
    """A broker that refuses connections fails the nudge, not the start: the campaign runs
    (a sweeper will pick it up) and the failure is counted."""
    async with app_for(scheme.format(port=_closed_port())) as app:
        jobs = _jobs(app)
        assert jobs.nudger is not None
        async with _client(app) as client:
            cid = await new_campaign(client, phones(1))
            start, start_s, _ = await _timed(client, f"/api/v1/campaigns/{cid}/start")
            assert start.status_code == 200 and start.json()["status"] == "running"
            assert await asyncio.to_thread(jobs.nudger.join, SEND_GIVE_UP_S)
            got = await client.get(f"/api/v1/campaigns/{cid}")
        assert start_s < PROMPT_S
        assert jobs.nudger.failed == 1 and got.json()["status"] == "running"


def test_nudges_during_a_stalled_send_are_coalesced() -> None:
    """While one send is stuck, any number of nudges wait as one; the latest id is sent
    after it; a nudge after close is dropped."""
    release = threading.Event()
    sent: list[int] = []

    def send(campaign_id: int) -> None:
        sent.append(campaign_id)
        if campaign_id == 1:
            assert release.wait(10.0)

    nudger = Nudger(send)
    nudger.nudge(1)
    deadline = time.monotonic() + 5.0
    while not sent and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    for campaign_id in range(2, 50):
        nudger.nudge(campaign_id)
    assert time.monotonic() - started < PROMPT_S  # nudge() never waits on the send
    assert sent == [1] and nudger.in_flight
    release.set()
    assert nudger.join(5.0)
    assert sent == [1, 49] and nudger.sent == 2 and nudger.failed == 0
    nudger.close()
    nudger.nudge(50)
    assert nudger.join(1.0) and sent == [1, 49]
