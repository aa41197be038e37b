"""The status callbacks' statements warmed at start-up (Postgres): every pooled connection
holds them prepared, nothing the warm-up wrote stays, and real callbacks afterwards
prepare nothing new."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from voicebot.api.twilio_status_warm import STATUS_WARM_TIMEOUT_S, warm_status_statements
from voicebot.app import create_app
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import (
    Call,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    Lead,
)

pytestmark = pytest.mark.integration

AUTH_TOKEN = "warm-auth-token"
POOL = 3
TABLES = ("leads", "campaigns", "campaign_leads", "calls", "campaign_attempts", "twilio_events")
PREPARED = """
SELECT pg_backend_pid() AS pid, coalesce(array_agg(statement), '{}') AS statements
FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared_statements%'
"""


async def _prepared_by_backend(engine: AsyncEngine, connections: int) -> dict[int, set[str]]:
    """The statements each pooled connection holds prepared, by backend pid (all checked
    out at once, so each is a different connection)."""
    conns = [await engine.connect() for _ in range(connections)]
    try:
        found: dict[int, set[str]] = {}
        for conn in conns:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            row = await raw.fetchrow(PREPARED)
            found[row["pid"]] = set(row["statements"])
        return found
    finally:
        for conn in conns:
            await conn.close()


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            for table in TABLES
        }


async def test_warm_up_prepares_the_callback_statements_on_every_connection_and_stores_nothing(
    postgres_url: str,
) -> None:
    """A pool of three: all three warmed, each holding the progress statement, the final
    status's locking join and its member update; no row of any table it touched is left."""
    settings = make_settings(database_url=postgres_url, db_pool_size=POOL)
    engine = create_engine(settings)
    try:
        before = await _counts(engine)
        assert await warm_status_statements(engine, settings, POOL + 2) == POOL
        assert await _counts(engine) == before
        prepared = await _prepared_by_backend(engine, POOL)
        assert len(prepared) == POOL
        for statements in prepared.values():
            assert any("WITH ledger AS" in s for s in statements)
            assert any("FOR NO KEY UPDATE OF campaign_attempts" in s for s in statements)
            assert any(s.startswith("UPDATE campaign_leads SET state=") for s in statements)
    finally:
        await engine.dispose()


async def test_warm_up_off_for_sqlite_and_zero_connections(postgres_url: str) -> None:
    """SQLite has no prepared statements to warm; zero connections asked for warms none."""
    settings = make_settings(database_url=postgres_url, db_pool_size=2)
    engine = create_engine(settings)
    try:
        assert await warm_status_statements(engine, settings, 0) == 0
        assert engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
    lite_settings = make_settings(database_url="sqlite+aiosqlite:///:memory:")
    lite = create_engine(lite_settings)
    try:
        assert await warm_status_statements(lite, lite_settings, 2) == 0
    finally:
        await lite.dispose()


async def _seed_three_calls(url: str) -> list[tuple[int, int]]:
    """A running campaign with three members being dialed, the third call's conversation
    already recorded (outcome set); (attempt id, call id) of each. Written through an
    engine of its own, so the app's connections prepare nothing for it."""
    settings = make_settings(database_url=url)
    engine = create_engine(settings)
    now = datetime.now(UTC)
    try:
        async with create_sessionmaker(engine)() as session:
            campaign = Campaign(
                name="warm", status=CampaignStatus.RUNNING, calendar="none", started_at=now
            )
            # The database is shared by this session's tests: numbers of this test's own.
            base = secrets.randbelow(10**6) * 10
            leads = [
                Lead(phone=f"+972549{base + i:07d}", status="new", consent_source="test", tags=[])
                for i in range(3)
            ]
            session.add_all([campaign, *leads])
            await session.flush()
            members = [
                CampaignLead(campaign_id=campaign.id, lead_id=lead.id, state="dialing", attempts=1)
                for lead in leads
            ]
            calls = [
                Call(lead_id=lead.id, campaign_id=campaign.id, status="queued", status_events=[])
                for lead in leads
            ]
            calls[2].outcome = "not_interested"
            calls[2].ended_at = now
            session.add_all([*members, *calls])
            await session.flush()
            attempts = [
                CampaignAttempt(
                    campaign_id=campaign.id,
                    member_id=member.id,
                    lead_id=member.lead_id,
                    attempt_no=1,
                    idempotency_key=f"warm-test-{secrets.token_hex(8)}",
                    status="dialing",
                    call_id=call.id,
                )
                for member, call in zip(members, calls, strict=True)
            ]
            session.add_all(attempts)
            await session.commit()
            return [(a.id, c.id) for a, c in zip(attempts, calls, strict=True)]
    finally:
        await engine.dispose()


async def test_callbacks_after_the_warm_up_prepare_nothing_new(postgres_url: str) -> None:
    """An app started with its pool of three warmed: a busy call (initiated, ringing,
    busy), a bad number (initiated, failed) and a finished conversation (initiated,
    ringing, in-progress, completed with its duration) are settled, and no connection
    prepared a statement it did not hold before the first callback."""
    settings = make_settings(
        database_url=postgres_url,
        twilio_auth_token=AUTH_TOKEN,
        db_pool_size=POOL,
        db_max_overflow=0,
        db_pool_warm=POOL,
    )
    seeded = await _seed_three_calls(postgres_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.voicebot.engine
        warmed = await _prepared_by_backend(engine, POOL)
        assert len(warmed) == POOL
        validator = RequestValidator(AUTH_TOKEN)
        sid_base = secrets.token_hex(12)
        transport = httpx.ASGITransport(app=app)
        plan = [
            (seeded[0], ("initiated", "ringing", "busy"), {}),
            (seeded[1], ("initiated", "failed"), {}),
            (
                seeded[2],
                ("initiated", "ringing", "in-progress", "completed"),
                {"CallDuration": "42"},
            ),
        ]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for n, ((attempt_id, _), statuses, extra) in enumerate(plan):
                for status in statuses:
                    path = f"/twilio/status?attempt={attempt_id}"
                    form = {"CallSid": f"CA{sid_base}{n:08d}", "CallStatus": status}
                    if status == statuses[-1]:
                        form.update(extra)
                    signature = validator.compute_signature(settings.public_base_url + path, form)
                    answer = await client.post(
                        path,
                        data=form,
                        headers={
                            "X-Twilio-Signature": signature,
                            "I-Twilio-Idempotency-Token": f"warm-{sid_base}-{n}-{status}",
                        },
                    )
                    assert answer.status_code == 204
        # The hang-up work of a completed call runs after the answer: let it end.
        await asyncio.sleep(0)
        after = await _prepared_by_backend(engine, POOL)
        async with app.state.voicebot.sessions() as session:
            settled = [await session.get(Call, call_id) for _, call_id in seeded]
    assert [(c.status, c.outcome) for c in settled if c is not None] == [
        ("busy", "no_answer"),
        ("failed", "failed"),
        ("completed", "not_interested"),
    ]
    assert after.keys() == warmed.keys()
    new = {pid: after[pid] - warmed[pid] for pid in after if after[pid] - warmed[pid]}
    assert new == {}


async def test_warm_up_with_postgres_unreachable_returns_zero_within_its_bound() -> None:
    """Nothing listens on the port: no exception (the app starts and prepares on first
    use), nothing warmed, and it gives up within its bound."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/voicebot"
    settings = make_settings(database_url=url, db_pool_size=2)
    engine = create_engine(settings)
    try:
        started = time.monotonic()
        assert await warm_status_statements(engine, settings, 2) == 0
        assert time.monotonic() - started < STATUS_WARM_TIMEOUT_S
    finally:
        await engine.dispose()
