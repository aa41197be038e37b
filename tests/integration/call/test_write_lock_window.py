"""On SQLite a turn write and a stream claim hold the one write lock for their statement
alone: once the statement is back on the event loop, another connection can write at once
(no transaction waits there for the loop to get round to its COMMIT)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import event, select

from tests.conftest import make_settings
from voicebot.api.state import AppState
from voicebot.api.twilio import _claim_call
from voicebot.brain.base import Reply
from voicebot.call.recorder import CallRecorder, TurnTimings
from voicebot.call.services import CallServices
from voicebot.cli import migrate
from voicebot.db.engine import (
    create_autocommit_engine,
    create_engine,
    create_sessionmaker,
    dispose_engines,
)
from voicebot.db.models import Call, CallStatus, CallTurn
from voicebot.metrics import Metrics


def _can_write_now(path: Path) -> bool:
    """Whether a second connection gets the write lock without waiting."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()
    return True


async def test_turn_write_and_claim_leave_the_write_lock_with_their_statement(
    tmp_path: Path,
) -> None:
    """After the turns' INSERT and the claim's UPDATE each come back to the loop, a second
    connection can take the write lock (with a COMMIT still to come, it could not)."""
    path = tmp_path / "voicebot.db"
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{path}")
    migrate(settings)
    engine = create_engine(settings)
    autocommit_engine = create_autocommit_engine(settings, engine)
    sessions = create_sessionmaker(engine)
    autocommit = create_sessionmaker(autocommit_engine)
    free_after: dict[str, bool] = {}

    @event.listens_for(autocommit_engine.sync_engine, "after_cursor_execute")
    def _probe(*args: Any) -> None:
        statement: str = args[2]
        if statement.startswith(("INSERT INTO call_turns", "UPDATE calls")):
            free_after[statement.split()[0]] = _can_write_now(path)

    try:
        async with sessions() as db:
            call = Call(call_sid="CAlock1", direction="inbound", status=CallStatus.IN_PROGRESS)
            db.add(call)
            await db.commit()
            call_id = call.id
        services: Any = SimpleNamespace(
            settings=settings, sessions=sessions, autocommit=autocommit, metrics=Metrics()
        )
        recorder = CallRecorder(cast(CallServices, services), call_id=call_id, call_sid="CAlock1")
        recorder.user_turn("כן, אפשר לדבר עכשיו")
        recorder.agent_turn(
            Reply(text="מצוין, תודה", intent="pitch", actions=(), end_call=False, transfer=False),
            TurnTimings(started_at=0.0),
            interrupted=False,
        )
        await recorder.flush(wait=True)
        state = cast(AppState, SimpleNamespace(autocommit=autocommit))
        await _claim_call(state, call_id, "MZlock1")
        assert free_after == {"INSERT": True, "UPDATE": True}
        async with sessions() as db:
            turns = (await db.scalars(select(CallTurn).order_by(CallTurn.seq))).all()
            claimed = await db.get(Call, call_id)
        assert [(t.seq, t.role, t.interrupted) for t in turns] == [
            (1, "user", False),
            (2, "assistant", False),
        ]
        assert claimed is not None and claimed.stream_sid == "MZlock1"
    finally:
        await dispose_engines(engine, autocommit_engine)
