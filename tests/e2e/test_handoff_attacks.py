"""Attacks on the voice webhook's hand-over to its Media Stream (commit 5e498f8): token
replays in the claim window, a claim stalled by a lock while the caller talks, a refused
stream whose caller spoke, a start racing the final status, the database down at the
claim, the peer gone mid-claim, and two server processes on one database. Real servers
(uvicorn in the test's loop, its app state kept for inspection), SQLite and Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import call_server_settings, hebrew_speech, recognising_sim
from voicebot.api.state import AppState
from voicebot.api.websocket_protocol import WEBSOCKET_SERVER_OPTIONS
from voicebot.app import create_app
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.call.registry import CallRegistry
from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, CallTurn, Campaign, DoNotCall, Lead, Meeting
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.server import free_port
from voicebot.testing.twilio_api_sim import SimulatedCall as RestCall
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_caller import (
    SIGNATURE_HEADER,
    TWILIO_USER_AGENT,
    SimulatedCall,
    open_stream,
    post_voice_webhook,
    stream_from_twiml,
)

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "handoff-attack-auth-token"
CALLER = "+972501234567"
CALLED = "+97233769999"
OTHER_STREAM = "MZ" + "f" * 32
SERVER_START_TIMEOUT_S = 10.0

ERROR_MARKERS = (
    "Traceback",
    "Exception in ASGI application",
    "never retrieved",
    "call.unexpected_error",
    "call.transport_failed",
)


@dataclass
class Served:
    """One running server: its base URL and its app's state."""

    base: str
    state: AppState

    @property
    def registry(self) -> CallRegistry:
        registry: CallRegistry = self.state.extras["call_registry"]
        return registry


@contextlib.asynccontextmanager
async def serving(settings: Settings, *, port: int) -> AsyncIterator[Served]:
    """``settings``' app under uvicorn in this loop (as ``running_server``), its state kept."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        **WEBSOCKET_SERVER_OPTIONS,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(SERVER_START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}", app.state.voicebot)
    finally:
        server.should_exit = True
        await task


def live_at_twilio(api: TwilioApiSimulator, call_sid: str) -> None:
    """The call as Twilio's REST API knows it, so a hang-up of it is accepted (and seen)."""
    api.calls[call_sid] = RestCall(
        sid=call_sid,
        to=CALLED,
        from_=CALLER,
        status="in-progress",
        created_at=datetime.now(UTC),
    )


async def answer(base: str, call_sid: str) -> tuple[str, dict[str, str]]:
    """Twilio's voice webhook for ``call_sid``: the stream URL and its parameters (token)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await post_voice_webhook(
            http,
            base,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            call_sid=call_sid,
            from_number=CALLER,
            to_number=CALLED,
        )
    return stream_from_twiml(response.status_code, response.text)


async def post_status(base: str, call_sid: str, status: str) -> int:
    """A signed status callback; returns the HTTP status."""
    form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "CallStatus": status}
    url = base + "/twilio/status"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    headers = {SIGNATURE_HEADER: signature, "User-Agent": TWILIO_USER_AGENT}
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(url, data=form, headers=headers)
    return response.status_code


def stream(
    base: str, stream_url: str, parameters: dict[str, str], call_sid: str
) -> contextlib.AbstractAsyncContextManager[SimulatedCall]:
    # The stream URL as the server at ``base`` names it (its signature and its host): a
    # token answered by one process may open its stream on another.
    here = urlsplit(base)
    stream_url = urlunsplit(urlsplit(stream_url)._replace(netloc=here.netloc))
    return open_stream(
        base,
        stream_url=stream_url,
        parameters=parameters,
        call_sid=call_sid,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
    )


async def greeted_or_ended(call: SimulatedCall, timeout_s: float = 10.0) -> None:
    await call.wait_until(
        lambda: call.ended or call.metrics.first_agent_media_ms is not None, timeout_s
    )


@dataclass
class Stored:
    """What the database holds about the call and everything a session may write."""

    call: Call
    turns: int
    meetings: int
    do_not_call: int
    lead_statuses: list[str]


async def stored(settings: Settings, call_sid: str) -> Stored:
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            row = (await db.scalars(select(Call).where(Call.call_sid == call_sid))).one()
            turns = await db.scalar(
                select(func.count()).select_from(CallTurn).where(CallTurn.call_id == row.id)
            )
            meetings = await db.scalar(select(func.count()).select_from(Meeting))
            dnc = await db.scalar(select(func.count()).select_from(DoNotCall))
            statuses = list((await db.scalars(select(Lead.status))).all())
    finally:
        await engine.dispose()
    return Stored(row, int(turns or 0), int(meetings or 0), int(dnc or 0), statuses)


async def wait_stream_sid(settings: Settings, call_sid: str, timeout_s: float = 10.0) -> str | None:
    """The row's stream_sid once a claim committed (None if none did in ``timeout_s``)."""
    sid: str | None = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                sid = (await stored(settings, call_sid)).call.stream_sid
                if sid is not None:
                    return sid
                await asyncio.sleep(0.1)
    return sid


@contextlib.contextmanager
def _sqlite_lock(url: str, call_sid: str, claim_for: str | None) -> Iterator[None]:
    con = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, timeout=15)
    try:
        con.execute("BEGIN IMMEDIATE")
        if claim_for is not None:
            con.execute("UPDATE calls SET stream_sid = ? WHERE call_sid = ?", (claim_for, call_sid))
        yield
        con.execute("COMMIT")
    finally:
        con.close()


@contextlib.asynccontextmanager
async def _postgres_lock(url: str, call_sid: str, claim_for: str | None) -> AsyncIterator[None]:
    con = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tx = con.transaction()
        await tx.start()
        if claim_for is None:
            await con.execute("SELECT 1 FROM calls WHERE call_sid = $1 FOR UPDATE", call_sid)
        else:
            await con.execute(
                "UPDATE calls SET stream_sid = $1 WHERE call_sid = $2", claim_for, call_sid
            )
        yield
        await tx.commit()
    finally:
        await con.close()


@contextlib.asynccontextmanager
async def claim_stalled(
    settings: Settings, call_sid: str, *, claim_for: str | None = None
) -> AsyncIterator[None]:
    """Another transaction holds the call row for the block (SQLite: the write lock); with
    ``claim_for`` it also claims the row for that stream, committed at the block's end."""
    if settings.database_url.startswith("sqlite"):
        with _sqlite_lock(settings.database_url, call_sid, claim_for):
            yield
    else:
        async with _postgres_lock(settings.database_url, call_sid, claim_for):
            yield


def server_errors(err: str) -> list[str]:
    """The server's log lines (JSON on stderr) at error level or with a traceback."""
    lines = []
    for line in err.splitlines():
        if any(marker in line for marker in ERROR_MARKERS):
            lines.append(line)
            continue
        with contextlib.suppress(ValueError):
            event: Any = json.loads(line)
            if isinstance(event, dict) and event.get("level") in {"error", "critical"}:
                lines.append(line)
    return lines


ANSWER_WORDS = "כן, אפשר לדבר עכשיו"
CALL_SID = "CA" + "e" * 32
WATCHDOG_STALL_S = 4.0
"""A claim stalled past ``inbound_media_timeout_s`` (3 s) and within the database's own
wait (``db_statement_timeout_ms``, 5 s): it commits, late."""
SHORT_STALL_S = 2.0
REPLAYS = 6


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=21, phrases=(ANSWER_WORDS,)) as running:
        yield running


@pytest.fixture
async def twilio_api() -> AsyncIterator[tuple[TwilioApiSimulator, str]]:
    api = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    try:
        async with serve_on_loopback(api.app) as url:
            yield api, url
    finally:
        await api.aclose()


def _settings(
    tmp_path: Path, sim: ProviderSim, database_url: str, twilio_url: str, **overrides: Any
) -> tuple[Settings, int]:
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        database_url=database_url,
        twilio_api_base_url=twilio_url,
        recording_dir=str(tmp_path / "recordings"),
        **overrides,
    )
    return settings, port


@pytest.fixture
async def server(
    database_url: str,
    tmp_path: Path,
    sim: ProviderSim,
    twilio_api: tuple[TwilioApiSimulator, str],
) -> AsyncIterator[tuple[Served, Settings]]:
    settings, port = _settings(tmp_path, sim, database_url, twilio_api[1])
    async with serving(settings, port=port) as served:
        yield served, settings


async def _recorded_campaign_call(settings: Settings, call_sid: str) -> None:
    """The call's row before its webhook, in a campaign that records its calls."""
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            lead = Lead(phone=CALLER, name="דנה", company="נגרות השרון")
            campaign = Campaign(name="הקלטות", record=True)
            db.add_all([lead, campaign])
            await db.flush()
            db.add(
                Call(
                    call_sid=call_sid,
                    lead_id=lead.id,
                    campaign_id=campaign.id,
                    to_number=CALLER,
                    from_number=CALLED,
                )
            )
            await db.commit()
    finally:
        await engine.dispose()


async def _recording(settings: Settings, call_sid: str, timeout_s: float = 10.0) -> Call:
    """The call row once its recording is saved."""
    async with asyncio.timeout(timeout_s):
        while True:
            row = (await stored(settings, call_sid)).call
            if row.recording_key is not None:
                return row
            await asyncio.sleep(0.1)


def _speech() -> bytes:
    return pcm16_to_ulaw(hebrew_speech(ANSWER_WORDS))


# ---- the claim stalled (a DB lock) while the session already runs ----


async def test_a_claim_stalled_past_the_inbound_watchdog_keeps_the_call(
    server: tuple[Served, Settings],
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another transaction holds the call row for 4 s while the handed-over stream greets
    and Twilio streams the caller's audio every 20 ms: the claim commits (within the
    database's 5 s wait) and the call goes on. The session must not take the caller's
    audio it holds back for the claim as a dead inbound stream (3 s watchdog): no end,
    no REST hang-up of the live call."""
    served, settings = server
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with contextlib.AsyncExitStack() as stack:
        blocked = contextlib.AsyncExitStack()
        await blocked.enter_async_context(claim_stalled(settings, CALL_SID))
        try:
            call = await stack.enter_async_context(
                stream(served.base, stream_url, parameters, CALL_SID)
            )
            await greeted_or_ended(call)
            with contextlib.suppress(TimeoutError):
                await call.wait_until(lambda: call.ended, WATCHDOG_STALL_S)
        finally:
            await blocked.aclose()
        with contextlib.suppress(TimeoutError):
            await call.wait_until(lambda: call.ended, 2.0)
        hangups = [r.form for r in api.updates_for(CALL_SID)]
        assert not call.ended, (call.close_code, call.close_reason, hangups)
        assert hangups == []
        assert await wait_stream_sid(settings, CALL_SID) == call.stream_sid
    assert server_errors(capsys.readouterr().err) == []


async def test_speech_during_a_stalled_claim_is_answered(
    server: tuple[Served, Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The caller answers the greeting while the claim waits 2 s on a lock: the words are
    held, not lost; once the claim holds the agent answers them."""
    served, settings = server
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with contextlib.AsyncExitStack() as stack:
        blocked = contextlib.AsyncExitStack()
        await blocked.enter_async_context(claim_stalled(settings, CALL_SID))
        try:
            call = await stack.enter_async_context(
                stream(served.base, stream_url, parameters, CALL_SID)
            )
            await greeted_or_ended(call)
            utterance = call.say(_speech())
            await asyncio.sleep(SHORT_STALL_S)
        finally:
            await blocked.aclose()
        await call.wait_until(lambda: call.ended or utterance.response_latency_ms is not None, 20)
        assert not call.ended, (call.close_code, call.close_reason)
        assert utterance.response_latency_ms is not None
    assert server_errors(capsys.readouterr().err) == []


# ---- a refused stream stores nothing, hangs up nothing ----


async def test_a_refused_stream_whose_caller_spoke_and_pressed_keys_stores_nothing(
    server: tuple[Served, Settings],
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another stream's claim holds the row (uncommitted) while this handed-over stream
    greets, its caller answers and presses 9 (the opt-out key); then the other claim
    commits and this one is refused: 1008, and no turn, outcome, summary, end, state,
    opt-out, meeting or REST hang-up comes of this stream."""
    served, settings = server
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with contextlib.AsyncExitStack() as stack:
        blocked = contextlib.AsyncExitStack()
        await blocked.enter_async_context(claim_stalled(settings, CALL_SID, claim_for=OTHER_STREAM))
        try:
            call = await stack.enter_async_context(
                stream(served.base, stream_url, parameters, CALL_SID)
            )
            await greeted_or_ended(call)
            call.say(_speech())
            await call.send_dtmf("9")
            await asyncio.sleep(SHORT_STALL_S)
        finally:
            await blocked.aclose()
        await call.wait_until(lambda: call.ended, 10)
        assert call.close_code == 1008
    await asyncio.sleep(1.0)  # anything the refused session would store has had its time
    after = await stored(settings, CALL_SID)
    row = after.call
    assert row.stream_sid == OTHER_STREAM
    assert (row.outcome, row.summary, row.ended_at, row.status) == (
        None,
        None,
        None,
        "in-progress",
    )
    assert (after.turns, after.meetings, after.do_not_call) == (0, 0, 0)
    assert "do_not_call" not in after.lead_statuses
    assert await served.state.store.load(CALL_SID) is None
    assert api.updates_for(CALL_SID) == []
    assert server_errors(capsys.readouterr().err) == []


async def test_a_refused_stream_saves_no_recording(
    server: tuple[Served, Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A recorded campaign's call that another stream claimed first: the handed-over
    stream here is refused (1008) and must not store a recording of its greeting as the
    call's recording (calls/<id>.wav, recording_key, recorded_at)."""
    served, settings = server
    await _recorded_campaign_call(settings, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with claim_stalled(settings, CALL_SID, claim_for=OTHER_STREAM):
        pass  # committed at once: the row is the other stream's before this one starts
    async with stream(served.base, stream_url, parameters, CALL_SID) as call:
        await call.wait_until(lambda: call.ended, 10)
        assert call.close_code == 1008
    await asyncio.sleep(1.5)  # the recording is saved after the close
    row = (await stored(settings, CALL_SID)).call
    assert (row.recording_key, row.recorded_at) == (None, None)
    recordings = tmp_path / "recordings"
    assert not recordings.exists() or not any(recordings.rglob("*.wav"))
    assert server_errors(capsys.readouterr().err) == []


async def test_a_replay_after_the_call_leaves_its_recording_alone(
    server: tuple[Served, Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A recorded call runs and ends on its stream; Twilio had retried the voice webhook
    (a second hand-over is left). The call's token replayed before the final status
    callback takes that hand-over, hears the greeting and is refused, and must leave the
    finished call's recording (file and row) as the real call stored it."""
    served, settings = server
    await _recorded_campaign_call(settings, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with stream(served.base, stream_url, parameters, CALL_SID) as call:
        await call.wait_for_greeting(15)
        await answer(served.base, CALL_SID)  # the retried webhook
        utterance = call.say(_speech())
        await call.wait_until(lambda: utterance.response_latency_ms is not None, 20)
    first = await _recording(settings, CALL_SID)
    assert first.recording_key is not None
    wav = tmp_path / "recordings" / first.recording_key
    original = wav.read_bytes()
    async with stream(served.base, stream_url, parameters, CALL_SID) as replay:
        await replay.wait_until(lambda: replay.ended, 10)
        assert replay.close_code == 1008
    await asyncio.sleep(1.5)
    row = (await stored(settings, CALL_SID)).call
    assert wav.read_bytes() == original, "the refused replay overwrote the call's recording"
    assert row.recorded_at == first.recorded_at
    assert server_errors(capsys.readouterr().err) == []


# ---- replays of the token in the claim window; racing the final status ----


async def test_replays_in_the_claim_window_get_nothing(
    server: tuple[Served, Settings],
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Six sockets send `start` with the one token while the claim is held up by a lock:
    one takes the hand-over and greets, the five others are closed with 1008 before any
    audio; the claim then names the winner, who goes on, and nothing is hung up."""
    served, settings = server
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with contextlib.AsyncExitStack() as stack:
        blocked = contextlib.AsyncExitStack()
        await blocked.enter_async_context(claim_stalled(settings, CALL_SID))
        try:
            calls = await asyncio.gather(
                *(
                    stack.enter_async_context(stream(served.base, stream_url, parameters, CALL_SID))
                    for _ in range(REPLAYS)
                )
            )
            for call in calls:
                await greeted_or_ended(call)
            winners = [c for c in calls if not c.ended]
            losers = [c for c in calls if c.ended]
            assert len(winners) == 1, [(c.ended, c.close_code) for c in calls]
            assert all(c.close_code == 1008 for c in losers)
            assert all(c.metrics.first_agent_media_ms is None for c in losers)
        finally:
            await blocked.aclose()
        assert await wait_stream_sid(settings, CALL_SID) == winners[0].stream_sid
        with contextlib.suppress(TimeoutError):
            await winners[0].wait_until(lambda: winners[0].ended, 1.5)
        assert not winners[0].ended
        assert api.updates_for(CALL_SID) == []
    assert server_errors(capsys.readouterr().err) == []


async def test_a_start_racing_the_final_status_callback(
    server: tuple[Served, Settings],
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stream takes the hand-over and greets while its claim waits on a lock; the
    call's `completed` arrives meanwhile. Whichever commits first: the status callback
    answers 204, no server error, no REST hang-up; a refused stream (status first) is
    closed with 1008 and stored nothing, a claimed one names its stream."""
    served, settings = server
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with contextlib.AsyncExitStack() as stack:
        blocked = contextlib.AsyncExitStack()
        await blocked.enter_async_context(claim_stalled(settings, CALL_SID))
        try:
            call = await stack.enter_async_context(
                stream(served.base, stream_url, parameters, CALL_SID)
            )
            await greeted_or_ended(call)
            status = asyncio.create_task(post_status(served.base, CALL_SID, "completed"))
            await asyncio.sleep(1.0)
        finally:
            await blocked.aclose()
        assert await status == httpx.codes.NO_CONTENT
        await asyncio.sleep(1.0)
        after = await stored(settings, CALL_SID)
        if after.call.stream_sid is None:
            await call.wait_until(lambda: call.ended, 10)
            assert call.close_code == 1008
            assert after.turns == 0
        else:
            assert after.call.stream_sid == call.stream_sid
    assert api.updates_for(CALL_SID) == []
    assert len(served.registry.handoffs) == 0
    assert server_errors(capsys.readouterr().err) == []


# ---- teardown: the peer gone during the claim ----


@pytest.mark.parametrize("refused", [False, True], ids=["claimed", "refused"])
async def test_peer_gone_during_the_claim_leaks_nothing(
    server: tuple[Served, Settings],
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
    refused: bool,
) -> None:
    """The caller hangs up while the stream's claim waits on a lock (then commits, or is
    refused by another stream's claim): the session ends without an unretrieved task
    exception or traceback, the call is no longer live nor held in this process, and no
    REST hang-up is made; a refused stream stored nothing."""
    served, settings = server
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    call_id = int(parameters["call_id"])
    claim_for = OTHER_STREAM if refused else None
    blocked = contextlib.AsyncExitStack()
    await blocked.enter_async_context(claim_stalled(settings, CALL_SID, claim_for=claim_for))
    try:
        async with stream(served.base, stream_url, parameters, CALL_SID) as call:
            await greeted_or_ended(call)
            assert served.registry.handoffs.held(call_id)
            # `stop` and the close go out now; the server reads them once the claim
            # holds (its receive path waits for it): the lock goes regardless.
            hanging_up = asyncio.create_task(call.hangup())
            await asyncio.sleep(1.0)
            await blocked.aclose()
            await hanging_up
    finally:
        await blocked.aclose()
    async with asyncio.timeout(10):
        while served.registry.live:  # noqa: ASYNC110 - the registry has no event to await
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    gc.collect()
    await asyncio.sleep(0.1)
    assert not served.registry.handoffs.held(call_id)
    after = await stored(settings, CALL_SID)
    if refused:
        assert after.call.stream_sid == OTHER_STREAM
        assert (after.turns, after.call.outcome) == (0, None)
    else:
        assert after.call.stream_sid == call.stream_sid
    assert api.updates_for(CALL_SID) == []
    assert server_errors(capsys.readouterr().err) == []


# ---- webhooks that must not leave a hand-over ----


async def test_a_machine_webhook_leaves_no_hand_over(
    server: tuple[Served, Settings],
) -> None:
    """AnsweredBy=machine_end_beep (synchronous AMD): the voicemail answer, no hand-over."""
    served, _ = server
    async with httpx.AsyncClient(timeout=10) as http:
        response = await post_voice_webhook(
            http,
            served.base,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            call_sid=CALL_SID,
            from_number=CALLER,
            to_number=CALLED,
            extra_params={"AnsweredBy": "machine_end_beep"},
        )
    assert response.status_code == httpx.codes.OK
    assert "<Stream" not in response.text
    assert len(served.registry.handoffs) == 0


async def test_the_database_down_at_the_claim_leaves_the_call_up(
    server: tuple[Served, Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The calls table gone between the webhook and the stream's start: the handed-over
    stream's claim fails, the call goes on unclaimed (as before the hand-over) past the
    inbound watchdog, and the caller is still answered."""
    served, settings = server
    stream_url, parameters = await answer(served.base, CALL_SID)
    sqlite = settings.database_url.startswith("sqlite")
    if sqlite:
        db = sqlite3.connect(settings.database_url.split("///", 1)[1], timeout=15)
        try:
            db.execute("ALTER TABLE calls RENAME TO calls_away")
            db.commit()
        finally:
            db.close()
    else:
        pg = await asyncpg.connect(
            settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
        )
        await pg.execute("ALTER TABLE calls RENAME TO calls_away")
    try:
        async with stream(served.base, stream_url, parameters, CALL_SID) as call:
            await greeted_or_ended(call)
            with contextlib.suppress(TimeoutError):
                await call.wait_until(lambda: call.ended, WATCHDOG_STALL_S)
            assert not call.ended, (call.close_code, call.close_reason)
            await call.wait_for_greeting(15)
            utterance = call.say(_speech())
            await call.wait_until(
                lambda: call.ended or utterance.response_latency_ms is not None, 20
            )
            assert utterance.response_latency_ms is not None
    finally:
        if not sqlite:
            await pg.execute("ALTER TABLE calls_away RENAME TO calls")
            await pg.close()
    errors = server_errors(capsys.readouterr().err)
    assert not [e for e in errors if "Traceback" in e or "ASGI" in e], errors


# ---- two server processes on one database ----


@pytest.fixture
async def two_servers(
    database_url: str,
    tmp_path: Path,
    sim: ProviderSim,
    twilio_api: tuple[TwilioApiSimulator, str],
) -> AsyncIterator[tuple[Served, Served, Settings]]:
    """Two apps on one database and one recording store, as two processes behind a load
    balancer (each its own registry, hand-overs and turn-state store)."""
    settings_a, port_a = _settings(tmp_path, sim, database_url, twilio_api[1])
    settings_b, port_b = _settings(tmp_path, sim, database_url, twilio_api[1])
    async with (
        serving(settings_a, port=port_a) as a,
        serving(settings_b, port=port_b) as b,
    ):
        yield a, b, settings_a


async def test_a_replay_on_the_webhooks_process_leaves_the_call_alone(
    two_servers: tuple[Served, Served, Settings],
    tmp_path: Path,
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The webhook is answered by A (its hand-over waits there), the stream goes to B,
    which claims the call and records it; the call ends. The token replayed on A takes
    A's hand-over, is refused, and must store nothing: the call's recording stays B's."""
    a, b, settings = two_servers
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    await _recorded_campaign_call(settings, CALL_SID)
    stream_url, parameters = await answer(a.base, CALL_SID)
    async with stream(b.base, stream_url, parameters, CALL_SID) as call:
        await call.wait_for_greeting(15)
        utterance = call.say(_speech())
        await call.wait_until(lambda: utterance.response_latency_ms is not None, 20)
    first = await _recording(settings, CALL_SID)
    assert first.stream_sid == call.stream_sid and first.recording_key is not None
    wav = tmp_path / "recordings" / first.recording_key
    original = wav.read_bytes()
    outcome = first.outcome
    async with stream(a.base, stream_url, parameters, CALL_SID) as replay:
        await replay.wait_until(lambda: replay.ended, 10)
        assert replay.close_code == 1008
    await asyncio.sleep(1.5)
    row = (await stored(settings, CALL_SID)).call
    assert (row.stream_sid, row.outcome) == (call.stream_sid, outcome)
    assert wav.read_bytes() == original, "the refused replay overwrote the call's recording"
    assert row.recorded_at == first.recorded_at
    assert [r for r in api.updates_for(CALL_SID) if r.value("Status") != "completed"] == []
    assert server_errors(capsys.readouterr().err) == []


async def test_a_stream_and_its_replay_on_two_processes_at_once(
    two_servers: tuple[Served, Served, Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The webhook on A; the stream on A (the hand-over) and the same token on B (the old
    path) at once, repeatedly: exactly one stream owns the call each time, the row names
    it, the other is closed with 1008."""
    a, b, settings = two_servers
    for n in range(4):
        call_sid = f"CA{n:032x}"
        stream_url, parameters = await answer(a.base, call_sid)
        async with contextlib.AsyncExitStack() as stack:
            calls = await asyncio.gather(
                *(
                    stack.enter_async_context(stream(base, stream_url, parameters, call_sid))
                    for base in (a.base, b.base)
                )
            )
            for call in calls:
                await greeted_or_ended(call)
            await asyncio.sleep(1.0)  # a refusal after the greeting has had its time
            alive = [c for c in calls if not c.ended]
            assert len(alive) == 1, [(c.ended, c.close_code) for c in calls]
            assert [c.close_code for c in calls if c.ended] == [1008]
            assert await wait_stream_sid(settings, call_sid) == alive[0].stream_sid
    assert server_errors(capsys.readouterr().err) == []


async def test_a_gather_webhook_leaves_no_hand_over(
    tmp_path: Path,
    sim: ProviderSim,
    twilio_api: tuple[TwilioApiSimulator, str],
) -> None:
    """A <Gather> conversation has no stream: its webhook leaves no hand-over."""
    settings, port = _settings(
        tmp_path,
        sim,
        f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}",
        twilio_api[1],
        conversation_mode="gather",
    )
    async with serving(settings, port=port) as served:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await post_voice_webhook(
                http,
                served.base,
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                call_sid=CALL_SID,
                from_number=CALLER,
                to_number=CALLED,
            )
        assert response.status_code == httpx.codes.OK
        assert "<Gather" in response.text and "<Stream" not in response.text
        assert len(served.registry.handoffs) == 0


async def test_a_retried_webhook_during_the_call_gives_its_token_nothing(
    server: tuple[Served, Settings],
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The call's stream runs; Twilio retries the voice webhook (a fresh token, a fresh
    hand-over). Both tokens on new sockets during the call are closed with 1008 before
    any audio (the call is held here), and the live call goes on untouched."""
    served, settings = server
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with stream(served.base, stream_url, parameters, CALL_SID) as call:
        await call.wait_for_greeting(15)
        retry_url, retry_parameters = await answer(served.base, CALL_SID)
        assert retry_parameters["call_id"] == parameters["call_id"]
        for url, params in ((retry_url, retry_parameters), (stream_url, parameters)):
            async with stream(served.base, url, params, CALL_SID) as replay:
                await greeted_or_ended(replay)
                assert replay.ended and replay.close_code == 1008
                assert replay.metrics.first_agent_media_ms is None
        utterance = call.say(_speech())
        await call.wait_until(lambda: call.ended or utterance.response_latency_ms is not None, 20)
        assert not call.ended and utterance.response_latency_ms is not None
    assert await wait_stream_sid(settings, CALL_SID) == call.stream_sid
    assert api.updates_for(CALL_SID) == []
    assert server_errors(capsys.readouterr().err) == []


async def test_a_token_replayed_after_the_call_hears_nothing(
    server: tuple[Served, Settings],
    twilio_api: tuple[TwilioApiSimulator, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twilio retried the voice webhook while the call's stream ran (its hand-over waits,
    refused only while the call is held). The caller hangs up; before the final status
    callback, the call's token replayed on a new socket must get no session: closed with
    1008 before any audio (no greeting naming the lead to whoever holds the token), as
    any token used twice was refused before the hand-over."""
    served, settings = server
    api, _ = twilio_api
    live_at_twilio(api, CALL_SID)
    stream_url, parameters = await answer(served.base, CALL_SID)
    async with stream(served.base, stream_url, parameters, CALL_SID) as call:
        await call.wait_for_greeting(15)
        await answer(served.base, CALL_SID)  # the retried webhook
    async with asyncio.timeout(10):
        while served.registry.live:  # noqa: ASYNC110 - the registry has no event to await
            await asyncio.sleep(0.05)
    async with stream(served.base, stream_url, parameters, CALL_SID) as replay:
        await greeted_or_ended(replay)
        await replay.wait_until(lambda: replay.ended, 10)
        assert replay.close_code == 1008
        assert replay.metrics.first_agent_media_ms is None, "the replay heard the greeting"
    assert (await stored(settings, CALL_SID)).call.stream_sid == call.stream_sid
    assert api.updates_for(CALL_SID) == []
    assert server_errors(capsys.readouterr().err) == []
