"""The autocommit engine (stream claims, turn batches) on the real databases: it leaves the
shared Postgres pool's connections transactional, a failing turn batch stores none of its
rows, and shutdown closes both engines' connections."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from tests.conftest import make_settings
from voicebot.app import create_app
from voicebot.call.recorder import insert_at_once
from voicebot.db.engine import (
    create_autocommit_engine,
    create_engine,
    create_sessionmaker,
    dispose_engines,
)
from voicebot.db.models import Call, CallStatus, CallTurn, Lead
from voicebot.db.types import utcnow


def _turn(call_id: int, seq: int) -> dict[str, object]:
    return {
        "call_id": call_id,
        "seq": seq,
        "role": "user",
        "text": "שלום",
        "interrupted": False,
        "intent": None,
        "latency": {},
        "created_at": utcnow(),
    }


async def test_a_transaction_after_an_autocommit_statement_still_rolls_back(
    database_url: str,
) -> None:
    """One pooled connection serves an autocommit claim, then a transaction: the
    transaction's rollback undoes its write (the connection is not left in autocommit)."""
    settings = make_settings(database_url=database_url, db_pool_size=1, db_max_overflow=0)
    engine = create_engine(settings)
    autocommit_engine = create_autocommit_engine(settings, engine)
    sessions, autocommit = create_sessionmaker(engine), create_sessionmaker(autocommit_engine)
    try:
        async with autocommit() as db:
            await db.execute(text("SELECT 1"))
        async with sessions() as db:
            db.add(Lead(phone="+972540000001", status="new"))
            await db.flush()
            await db.rollback()
        async with sessions() as db:
            found = await db.scalar(select(func.count()).select_from(Lead))
        assert found == 0
    finally:
        await dispose_engines(engine, autocommit_engine)


async def test_a_failing_turn_batch_stores_none_of_its_rows(database_url: str) -> None:
    """A batch whose last row breaks the unique (call, seq): the INSERT, alone in autocommit,
    stores none of the batch (no half batch a retry would then duplicate or refuse)."""
    settings = make_settings(database_url=database_url)
    engine = create_engine(settings)
    autocommit_engine = create_autocommit_engine(settings, engine)
    sessions, autocommit = create_sessionmaker(engine), create_sessionmaker(autocommit_engine)
    try:
        async with sessions() as db:
            call = Call(call_sid="CAbatch", direction="inbound", status=CallStatus.IN_PROGRESS)
            db.add(call)
            await db.commit()
        with pytest.raises(IntegrityError):
            async with autocommit() as db:
                await insert_at_once(db, [_turn(call.id, 1), _turn(call.id, 2), _turn(call.id, 1)])
        async with autocommit() as db:
            await insert_at_once(db, [_turn(call.id, 1), _turn(call.id, 2)])
        async with sessions() as db:
            seqs = (await db.scalars(select(CallTurn.seq).order_by(CallTurn.seq))).all()
        assert seqs == [1, 2]
    finally:
        await dispose_engines(engine, autocommit_engine)


def _open_files(stem: Path) -> list[str]:
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(stem)):
            held.append(target)
    return held


async def test_shutdown_closes_both_engines(database_url: str, tmp_path: Path) -> None:
    """After the app stops, no file of the SQLite database is open in the process and no
    Postgres connection of it is left on the server."""
    settings = make_settings(database_url=database_url, tts_cache_dir=str(tmp_path / "tts"))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.voicebot
        async with state.autocommit() as db:
            await db.execute(select(Call).limit(1))
        async with state.sessions() as db:
            await db.execute(select(Call).limit(1))
        if state.engine.dialect.name == "sqlite":
            assert _open_files(tmp_path / "test.db")
        database = state.engine.url.database
    if database_url.startswith("sqlite"):
        assert _open_files(tmp_path / "test.db") == []
        return
    probe = create_engine(make_settings(database_url=database_url, db_pool_size=1))
    try:
        async with probe.connect() as conn:
            left = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            )
    finally:
        await probe.dispose()
    assert left == 0
