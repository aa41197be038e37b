"""The overview's latency percentiles: Postgres computes them in SQL and must agree with
the Python computation the other databases use, odd stored breakdowns included."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import make_settings
from voicebot.db import queries
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, CallTurn, Lead
from voicebot.db.types import utcnow
from voicebot.ui.pages_overview import PERCENTILES, _latency_table

ODD_BREAKDOWNS = [
    {"total": 5},  # a fixed phrase: no stages
    {"endpoint": 700, "stt": 210.9, "llm_first_token": 380, "tts_first_byte": 160,
     "first_frame": 20, "total": 1470},
    {"endpoint": 650, "stt": 190, "brain": 3, "tts_first_byte": 120, "total": 0},
    {"endpoint": -5, "stt": "slow", "llm_first_token": None, "first_frame": 40},
    {},
]  # fmt: skip


async def _seed(session: AsyncSession, count: int) -> None:
    rng = random.Random(3)
    lead = Lead(phone="+972525550009", name="דנה")
    session.add(lead)
    await session.flush()
    call = Call(call_sid="CA" + "7" * 32, lead_id=lead.id, to_number=lead.phone)
    session.add(call)
    await session.flush()
    now = utcnow()
    turns = []
    for seq in range(count):
        latency = dict(ODD_BREAKDOWNS[seq % len(ODD_BREAKDOWNS)])
        if seq % 7 == 0:
            latency = {
                "endpoint": rng.randint(200, 900),
                "stt": rng.uniform(50, 400),
                "llm_first_token": rng.randint(100, 900),
                "tts_first_byte": rng.randint(80, 300),
                "first_frame": rng.randint(0, 40),
                "total": rng.randint(600, 2500),
            }
        role = "user" if seq % 5 == 4 else "assistant"
        age = timedelta(minutes=rng.uniform(0, 90))  # some older than the hour
        turns.append(
            CallTurn(call_id=call.id, seq=seq, role=role, text="…", latency=latency,
                     created_at=now - age)
        )  # fmt: skip
    session.add_all(turns)
    await session.commit()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_sql_percentiles_match_the_python_ones(database_url: str) -> None:
    """Same turn count and the same p50/p95 per stage and total (to the integer ms shown)."""
    engine = create_engine(make_settings(database_url=database_url))
    try:
        sessions = create_sessionmaker(engine)
        async with sessions() as session:
            await _seed(session, 600)
        since = utcnow() - timedelta(hours=1)
        async with sessions() as session:
            computed = await queries.turn_latency_percentiles(session, since, PERCENTILES)
            latencies = await queries.turn_latencies_since(session, since)
        assert computed is not None
        turns, table = computed
        assert turns == len(latencies) > 100
        expected = _latency_table(latencies)
        shown = {stage: {p: int(v) for p, v in row.items()} for stage, row in table.items()}
        assert shown == {s: {p: int(v) for p, v in row.items()} for s, row in expected.items()}
    finally:
        await engine.dispose()


async def test_other_databases_get_none(database_url: str) -> None:
    """On SQLite the SQL path declines, and the overview computes the table itself."""
    engine = create_engine(make_settings(database_url=database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            result = await queries.turn_latency_percentiles(session, utcnow(), PERCENTILES)
        assert (result is None) == database_url.startswith("sqlite")
    finally:
        await engine.dispose()
