"""The database down in the middle of a live call, over a real Postgres: an opt-out is
still heard as done (the removal goodbye, the call ends ``do_not_call``) and, once the
database is back, the sweeper writes it to do-not-call and a campaign over the lead never
dials it; any other tool's failure is answered with the technical-problem apology."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from tests.conftest import _truncate_postgres
from tests.e2e.conftest import call_server_settings, hebrew_speech, recognising_sim
from tests.integration.jobs.conftest import ALWAYS_OPEN
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.brain.phrases import DNC_BYE
from voicebot.call.speaker import APOLOGY_TEXT, SYSTEM_APOLOGY_TEXT
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_api_sim import SimulatedCall as RestCall
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_caller import DEFAULT_TO, place_call

ACCOUNT_SID = "AC" + "9" * 32
AUTH_TOKEN = "optout-outage-token"
FROM_NUMBER = "+97233720000"
REMOVE_ME = "תורידו אותי מהרשימה שלכם בבקשה"
MEETING = "אני רוצה לקבוע פגישה"


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=9, phrases=[REMOVE_ME, MEETING]) as running:
        yield running


@pytest.fixture
async def twilio_api() -> AsyncIterator[tuple[TwilioApiSimulator, str]]:
    api = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    async with serve_on_loopback(api.app) as url:
        yield api, url
    await api.aclose()


@pytest.fixture
def postgres(postgres_url: str) -> str:
    asyncio.run(_truncate_postgres(postgres_url))
    return postgres_url


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """Every statement of every engine in this process fails in the driver, as when
    Postgres is unreachable, until the block exits."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database is down"))

    event.listen(Engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", refuse)


def _live_at_twilio(api: TwilioApiSimulator, sid: str) -> None:
    """The call as Twilio's REST API knows it, so the hang-up update succeeds."""
    api.calls[sid] = RestCall(
        sid=sid,
        to=DEFAULT_TO,
        from_=FROM_NUMBER,
        status="in-progress",
        created_at=datetime.now(UTC),
    )


@contextlib.asynccontextmanager
async def _server(
    tmp_path: Path, sim: ProviderSim, twilio_api: tuple[TwilioApiSimulator, str], database: str
) -> AsyncIterator[str]:
    """The call server on ``database`` with the rule brain; its own sweeper dials the
    Twilio simulator every half second (embedded default)."""
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        database_url=database,
        twilio_api_base_url=twilio_api[1],
        twilio_from_number=FROM_NUMBER,
        campaign_sweep_interval_s=0.5,
    )
    async with running_server(settings, port=port) as base:
        yield base


async def _poll(check: Any, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        # The server's sweeper and the call write on their own clocks: nothing to await.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_an_opt_out_during_a_database_outage_is_heard_kept_and_never_dialed(
    tmp_path: Path,
    sim: ProviderSim,
    twilio_api: tuple[TwilioApiSimulator, str],
    postgres: str,
) -> None:
    """The database fails at the opt-out: `optout.deferred` is logged, the caller hears the
    removal goodbye (not an apology) and the call ends `do_not_call`; after the database is
    back the sweeper writes the do-not-call row, and starting a campaign over the lead
    skips it without a dial."""
    api = twilio_api[0]
    sid = "CA" + "9d" * 16
    _live_at_twilio(api, sid)
    async with (
        _server(tmp_path, sim, twilio_api, postgres) as base,
        httpx.AsyncClient(base_url=base, timeout=10.0) as http,
    ):
        lead = await http.post(
            "/api/v1/leads",
            json={"name": "דנה כהן", "phone": DEFAULT_TO, "consent_source": "web form"},
        )
        assert lead.status_code == 201, lead.text
        campaign = await http.post("/api/v1/campaigns", json={"name": "חורף", **ALWAYS_OPEN})
        cid = campaign.json()["id"]
        added = await http.post(
            f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": [lead.json()["id"]]}
        )
        assert added.status_code < 300, added.text

        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            async with place_call(
                base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
            ) as call:
                await call.wait_for_greeting(20)
                heard = len(call.metrics.marks)
                with database_down():
                    call.say(pcm16_to_ulaw(hebrew_speech(REMOVE_ME)))
                    # Up until the opt-out was deferred (or, without the outbox, the
                    # apology's first sentence came back).
                    await call.wait_until(
                        lambda: (
                            any(e["event"] == "optout.deferred" for e in logs)
                            or len(call.metrics.marks) > heard
                        ),
                        30,
                    )
                await call.wait_until(lambda: call.ended, 20)
        deferred = [e for e in logs if e["event"] == "optout.deferred"]
        assert len(deferred) == 1, [e["event"] for e in logs]
        assert deferred[0]["call_sid"] == sid
        assert deferred[0]["lead_id"] == lead.json()["id"]

        detail: dict[str, Any] = {}

        async def call_finished() -> bool:
            nonlocal detail
            items = (await http.get("/api/v1/calls")).json()["items"]
            detail = (await http.get(f"/api/v1/calls/{items[0]['id']}")).json()
            return detail["outcome"] is not None

        await _poll(call_finished, 20)
        assert detail["outcome"] == "do_not_call"
        said = [t["text"] for t in detail["turns"] if t["role"] == "assistant"]
        assert said[-1] == DNC_BYE, said
        assert APOLOGY_TEXT not in said and SYSTEM_APOLOGY_TEXT not in said

        async def on_the_list() -> bool:
            items = (await http.get("/api/v1/do-not-call")).json()["items"]
            return [item["phone"] for item in items] == [DEFAULT_TO]

        await _poll(on_the_list, 10)  # the server's sweeper drained its outbox

        assert (await http.post(f"/api/v1/campaigns/{cid}/start")).status_code == 200

        async def completed() -> bool:
            stats = (await http.get(f"/api/v1/campaigns/{cid}/stats")).json()
            return bool(stats["status"] == "completed")

        await _poll(completed, 20)
    dialed = [c for c in api.calls.values() if c.sid != sid and c.to == DEFAULT_TO]
    assert dialed == []


async def test_a_tool_failing_on_the_database_is_answered_with_the_technical_apology(
    tmp_path: Path,
    sim: ProviderSim,
    twilio_api: tuple[TwilioApiSimulator, str],
    postgres: str,
) -> None:
    """The caller asks for a meeting while the database is down: the slot query fails, the
    caller hears the technical-problem apology (not "I didn't hear you"), the failure is
    logged once as `call.brain_io_failed` with its turn, and the call goes on."""
    sid = "CA" + "5e" * 16
    _live_at_twilio(twilio_api[0], sid)
    async with (
        _server(tmp_path, sim, twilio_api, postgres) as base,
        httpx.AsyncClient(base_url=base, timeout=10.0) as http,
    ):
        lead = await http.post("/api/v1/leads", json={"name": "דנה כהן", "phone": DEFAULT_TO})
        assert lead.status_code == 201, lead.text
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            async with place_call(
                base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
            ) as call:
                await call.wait_for_greeting(20)
                heard = len(call.metrics.marks)
                with database_down():
                    call.say(pcm16_to_ulaw(hebrew_speech(MEETING)))
                    await call.wait_until(
                        lambda: any(e["event"] == "call.brain_io_failed" for e in logs), 30
                    )
                await call.wait_until(
                    lambda: len(call.metrics.marks) > heard and not call.playback.busy, 20
                )
                assert not call.ended
        failed = [e for e in logs if e["event"] == "call.brain_io_failed"]
        assert len(failed) == 1, failed
        assert failed[0]["call_sid"] == sid
        assert failed[0]["turn"] == 2  # the greeting was turn 1

        said: list[str] = []

        async def apology_stored() -> bool:
            nonlocal said
            items = (await http.get("/api/v1/calls")).json()["items"]
            detail = (await http.get(f"/api/v1/calls/{items[0]['id']}")).json()
            said = [t["text"] for t in detail["turns"] if t["role"] == "assistant"]
            return SYSTEM_APOLOGY_TEXT in said or APOLOGY_TEXT in said

        await _poll(apology_stored, 10)
    assert SYSTEM_APOLOGY_TEXT in said and APOLOGY_TEXT not in said, said
