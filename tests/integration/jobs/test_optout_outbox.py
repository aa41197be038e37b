"""Opt-outs the database refused: kept in the Redis outbox (real Redis), written to
do-not-call by the next sweeper pass before it claims anyone (real database), and logged
as lost only when the outbox fails too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from tests.conftest import make_settings
from tests.integration.jobs.conftest import new_campaign
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.booking_tools import DbBookingTools
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import (
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    DoNotCall,
    Lead,
    WebhookDelivery,
)
from voicebot.db.optouts import OPTOUT_WRITE_BUDGET_S, close_outbox, record_opt_out
from voicebot.db.types import utcnow
from voicebot.errors import OutboxUnavailableError
from voicebot.jobs.pacing import LocalPacer
from voicebot.jobs.sweeper import Sweeper
from voicebot.store.optout_outbox import OUTBOX_KEY, OptOut, OptOutOutbox
from voicebot.telephony.rest import TwilioDialer
from voicebot.testing.server import free_port

PHONE = "+972525550123"
CALL_SID = "CA" + "0f" * 16


def _settings(database_url: str) -> Settings:
    return make_settings(
        database_url=database_url,
        twilio_account_sid="AC" + "7" * 32,
        twilio_auth_token="optout-token",
        twilio_api_base_url=f"http://127.0.0.1:{free_port()}",  # never reached: no dial runs
        webhook_url="https://hooks.example.com/voicebot",
    )


def _closed_database() -> str:
    """A Postgres URL on a loopback port nobody listens on: every connect is refused."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/voicebot"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(make_settings(database_url=database_url))
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def down_sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(make_settings(database_url=_closed_database()))
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def outbox(redis_url: str) -> AsyncIterator[OptOutOutbox]:
    client = aioredis.from_url(redis_url)
    yield OptOutOutbox(redis=client)
    await client.aclose()


async def _lead_in_running_campaign(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> tuple[int, int]:
    """A running campaign over one lead; set running in the database, since this app has
    no Twilio account to start it with (and so no sweeper of its own)."""
    cid = await new_campaign(client, [PHONE])
    async with sessions() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == cid).values(status=CampaignStatus.RUNNING)
        )
        await session.commit()
    leads = (await client.get("/api/v1/leads")).json()["items"]
    return cid, int(leads[0]["id"])


def _sweeper(settings: Settings, sessions: Any, outbox: OptOutOutbox) -> Sweeper:
    return Sweeper(
        settings=settings,
        sessions=sessions,
        twilio=TwilioDialer.from_settings(settings),
        pacer=LocalPacer(account_cps=settings.twilio_cps),
        optouts=outbox,
    )


async def test_a_refused_opt_out_waits_in_redis_and_the_next_pass_writes_it_before_claiming(
    database_url: str,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    down_sessions: async_sessionmaker[AsyncSession],
    outbox: OptOutOutbox,
    redis_url: str,
) -> None:
    """The database refuses the opt-out: the tool returns within its budget, the entry is
    in the Redis list and `optout.deferred` is logged once with the call; one sweeper pass
    writes the do-not-call row and its `lead.opted_out` event, empties the outbox, and the
    lead's campaign member is skipped, never attempted."""
    settings = _settings(database_url)
    cid, lead_id = await _lead_in_running_campaign(client, sessions)
    tools = DbBookingTools(
        settings=settings,
        sessions=down_sessions,
        lead_id=lead_id,
        call_sid=CALL_SID,
        phone=PHONE,
        optouts=outbox,
    )
    with capture_logs() as logs:
        started = time.monotonic()
        await tools.add_to_do_not_call()
        took_s = time.monotonic() - started
    assert took_s < OPTOUT_WRITE_BUDGET_S + 0.5
    deferred = [e for e in logs if e["event"] == "optout.deferred"]
    assert len(deferred) == 1, logs
    assert (deferred[0]["lead_id"], deferred[0]["call_sid"]) == (lead_id, CALL_SID)
    assert not [e for e in logs if e["log_level"] == "error"], logs
    check = aioredis.from_url(redis_url)
    try:
        assert await check.llen(OUTBOX_KEY) == 1

        report = await _sweeper(settings, sessions, outbox).sweep_once()

        assert report.optouts_drained == 1
        assert await check.llen(OUTBOX_KEY) == 0
    finally:
        await check.aclose()
    async with sessions() as session:
        rows = (await session.scalars(select(DoNotCall))).all()
        assert [(r.phone, r.source) for r in rows] == [(PHONE, "call")]
        lead = await session.get(Lead, lead_id)
        assert lead is not None and lead.status == "do_not_call"
        events = (await session.scalars(select(WebhookDelivery.event_type))).all()
        assert events.count("lead.opted_out") == 1, events
        member = (
            await session.scalars(select(CampaignLead).where(CampaignLead.campaign_id == cid))
        ).one()
        assert (member.state, member.last_outcome) == ("skipped", "do_not_call")
        assert (await session.scalars(select(CampaignAttempt))).all() == []


async def test_a_drain_while_the_database_is_still_down_keeps_the_entry_and_claims_no_one(
    database_url: str,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    down_sessions: async_sessionmaker[AsyncSession],
    outbox: OptOutOutbox,
    redis_url: str,
) -> None:
    """A pass that cannot write the outbox's entry fails before any claim and leaves the
    entry; the pass after the database is back writes it once (a second drain of the same
    entry creates no second row or event)."""
    settings = _settings(database_url)
    _, lead_id = await _lead_in_running_campaign(client, sessions)
    tools = DbBookingTools(
        settings=settings, sessions=down_sessions, lead_id=lead_id, phone=PHONE, optouts=outbox
    )
    await tools.add_to_do_not_call()
    with pytest.raises((SQLAlchemyError, OSError)):
        await _sweeper(settings, down_sessions, outbox).sweep_once()
    check = aioredis.from_url(redis_url)
    try:
        assert await check.llen(OUTBOX_KEY) == 1
        raw = (await check.lrange(OUTBOX_KEY, 0, 0))[0]
        await check.rpush(OUTBOX_KEY, raw)  # the same entry twice (a retried put)
        report = await _sweeper(settings, sessions, outbox).sweep_once()
        assert report.optouts_drained == 2
        assert await check.llen(OUTBOX_KEY) == 0
    finally:
        await check.aclose()
    async with sessions() as session:
        assert len((await session.scalars(select(DoNotCall))).all()) == 1
        events = (await session.scalars(select(WebhookDelivery.event_type))).all()
        assert events.count("lead.opted_out") == 1, events
        assert (await session.scalars(select(CampaignAttempt))).all() == []


async def test_an_unreadable_outbox_claims_no_one(
    database_url: str,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Redis down at the pass: the outbox may hold an opt-out, so the pass claims no one."""
    settings = _settings(database_url)
    await _lead_in_running_campaign(client, sessions)
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.3)
    try:
        with pytest.raises(OutboxUnavailableError):
            await _sweeper(settings, sessions, OptOutOutbox(redis=dead)).sweep_once()
    finally:
        await dead.aclose()
    async with sessions() as session:
        assert (await session.scalars(select(CampaignAttempt))).all() == []


async def test_database_and_redis_both_down_is_logged_as_lost_with_the_lead(
    database_url: str,
    down_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The one case left: neither the database nor Redis takes the opt-out; it is logged at
    ERROR as `optout.lost` with the lead id and the call, and the tool does not raise (the
    caller still hears the removal goodbye)."""
    settings = _settings(database_url)
    dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.3)
    tools = DbBookingTools(
        settings=settings,
        sessions=down_sessions,
        lead_id=41,
        call_sid=CALL_SID,
        phone=PHONE,
        optouts=OptOutOutbox(redis=dead),
    )
    try:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            await tools.add_to_do_not_call()
    finally:
        await dead.aclose()
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [e["event"] for e in errors] == ["optout.lost"], logs
    assert (errors[0]["lead_id"], errors[0]["call_sid"]) == (41, CALL_SID)
    assert not [e for e in logs if e["event"] == "optout.deferred"]


async def test_an_in_process_opt_out_left_at_shutdown_is_written_by_a_last_drain(
    database_url: str,
    down_sessions: async_sessionmaker[AsyncSession],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Embedded default (no Redis): an opt-out deferred into the process's own outbox just
    before the server stops (its drain loop asleep) is written as the lifespan ends, not
    dropped with the process."""
    settings = make_settings(database_url=database_url, campaign_sweep_interval_s=5.0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        optouts = app.state.voicebot.extras["call_services"].optouts
        assert not optouts.shared
        tools = DbBookingTools(
            settings=settings,
            sessions=down_sessions,
            lead_id=None,
            call_sid=CALL_SID,
            phone=PHONE,
            optouts=optouts,
        )
        await tools.add_to_do_not_call()
        assert len(await optouts.peek(10)) == 1
    async with sessions() as session:
        rows = (await session.scalars(select(DoNotCall))).all()
    assert [r.phone for r in rows] == [PHONE]


async def test_an_in_process_opt_out_that_cannot_be_written_at_shutdown_is_logged_as_lost(
    database_url: str, down_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The process stops with the database still down: each entry of its in-process outbox
    is logged at ERROR as `optout.lost` (reason process_exit, with the call SID), since
    nothing else will ever write it."""
    settings = _settings(database_url)
    outbox = OptOutOutbox()
    tools = DbBookingTools(
        settings=settings, sessions=down_sessions, lead_id=7, call_sid=CALL_SID, optouts=outbox
    )
    await tools.add_to_do_not_call()
    with capture_logs() as logs:
        lost = await close_outbox(outbox, down_sessions, settings)
    assert lost == 1
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [(e["event"], e["reason"]) for e in errors] == [("optout.lost", "process_exit")]
    assert (errors[0]["lead_id"], errors[0]["call_sid"]) == (7, CALL_SID)


async def test_two_drains_writing_the_same_opt_out_at_once_both_succeed_with_one_row_and_event(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Two sweepers (two processes) write the same outbox entry at once: one creates the
    row and its `lead.opted_out` event, the other finds it there; neither pass fails
    (the loser's unique violation may surface at the flush before the event, not only at
    the commit)."""
    settings = _settings(database_url)
    entry = OptOut(
        phone=PHONE, lead_id=None, source="call", requested_at=utcnow(), call_sid=CALL_SID
    )
    writers = 8
    results = await asyncio.gather(
        *(record_opt_out(sessions, settings, entry) for _ in range(writers)),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sorted(results) == [False] * (writers - 1) + [True]
    async with sessions() as session:
        assert len((await session.scalars(select(DoNotCall))).all()) == 1
        events = (await session.scalars(select(WebhookDelivery.event_type))).all()
        assert events.count("lead.opted_out") == 1, events


async def test_a_web_process_with_workers_but_no_redis_says_its_outbox_is_not_shared(
    database_url: str,
) -> None:
    """A real broker (workers sweep elsewhere) without REDIS_URL: the workers cannot see
    the web process's in-memory outbox, and the start-up says so once."""
    settings = make_settings(database_url=database_url, broker_url="amqp://u:p@127.0.0.1:1/%2F")
    app = create_app(settings)
    with capture_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    warned = [e for e in logs if e["event"] == "optout.outbox_not_shared"]
    assert len(warned) == 1 and warned[0]["log_level"] == "warning", logs


async def test_the_embedded_default_does_not_warn_about_its_outbox(database_url: str) -> None:
    """The embedded default sweeps in the same process: its in-memory outbox is read by its
    own sweeper, nothing to warn about."""
    app = create_app(make_settings(database_url=database_url))
    with capture_logs() as logs:
        async with app.router.lifespan_context(app):
            pass
    assert not [e for e in logs if e["event"] == "optout.outbox_not_shared"]


async def test_an_entry_the_database_refuses_for_good_is_dead_lettered_and_the_rest_drains(
    database_url: str,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    outbox: OptOutOutbox,
    redis_url: str,
) -> None:
    """A poison entry (a number longer than the do-not-call column, refused by Postgres
    with a DataError) ahead of a good one: the pass moves it to the dead-letter list with
    one ERROR line, writes the good one and goes on to claim; it is never retried."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite stores a string of any length: nothing refuses the entry")
    settings = _settings(database_url)
    _, lead_id = await _lead_in_running_campaign(client, sessions)
    poison = OptOut(
        phone="+97252" + "5" * 40,
        lead_id=None,
        source="call",
        requested_at=utcnow(),
        call_sid=CALL_SID,
    )
    await outbox.put(poison)
    await outbox.put(OptOut(phone=PHONE, lead_id=lead_id, source="call", requested_at=utcnow()))
    with capture_logs() as logs:
        first = await _sweeper(settings, sessions, outbox).sweep_once()
        second = await _sweeper(settings, sessions, outbox).sweep_once()
    assert (first.optouts_drained, second.optouts_drained) == (1, 0)
    dead = [e for e in logs if e["event"] == "optout.dead_letter"]
    assert len(dead) == 1 and dead[0]["call_sid"] == CALL_SID, logs
    assert [OptOut.from_json(raw).phone for raw in await outbox.dead_letters()] == [poison.phone]
    check = aioredis.from_url(redis_url)
    try:
        assert await check.llen(OUTBOX_KEY) == 0
    finally:
        await check.aclose()
    async with sessions() as session:
        assert [r.phone for r in (await session.scalars(select(DoNotCall))).all()] == [PHONE]
