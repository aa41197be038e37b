"""The Media Stream's start: the call is claimed and its context read at the same time
(the greeting waits for the slower of the two, not their sum); a refused claim is raised
once the read in flight has finished (not cancelled: see the test)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import make_settings
from voicebot.api import twilio
from voicebot.db.engine import create_autocommit_engine, create_engine, create_sessionmaker
from voicebot.errors import SignatureError
from voicebot.testing.server import free_port

STEP_S = 0.2
"""How long each of the claim and the context read takes here."""
OVERLAP_LIMIT_S = 1.5 * STEP_S
"""Done within this: the two overlapped (one after the other takes 2 x STEP_S)."""


async def test_claim_and_context_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim and a context read of STEP_S each are done in well under 2 x STEP_S, and
    the context read is what comes back."""
    context = (None, None, None)

    async def claim(_state: Any, _call_id: int, _stream_sid: str) -> None:
        await asyncio.sleep(STEP_S)

    async def read(_state: Any, _call_id: int, _call_sid: str) -> Any:
        await asyncio.sleep(STEP_S)
        return context

    monkeypatch.setattr(twilio, "_claim_call", claim)
    monkeypatch.setattr(twilio, "_call_context", read)
    started = time.monotonic()
    got = await twilio._claimed_call_context(object(), 1, "CA1", "MZ1")  # type: ignore[arg-type]
    assert time.monotonic() - started < OVERLAP_LIMIT_S
    assert got is context


async def test_refused_claim_lets_the_context_read_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token already used: the SignatureError reaches the caller after the context read
    in flight has finished; it is not cancelled. A query cancelled in flight costs its
    pooled connection, and on asyncpg the cancel request it sends leaves a future nobody
    retrieves: asyncio logged "Future exception was never retrieved ... unexpected
    connection_lost() call" in a replayed-token test on Postgres (MagicStack/asyncpg#1310)."""
    read_state: dict[str, bool] = {"started": False, "cancelled": False, "finished": False}

    async def claim(_state: Any, _call_id: int, _stream_sid: str) -> None:
        await asyncio.sleep(0)
        raise SignatureError("stream token already used (the call has a stream)")

    async def read(_state: Any, _call_id: int, _call_sid: str) -> Any:
        read_state["started"] = True
        try:
            await asyncio.sleep(STEP_S)
        except asyncio.CancelledError:
            read_state["cancelled"] = True
            raise
        read_state["finished"] = True
        return None, None, None

    monkeypatch.setattr(twilio, "_claim_call", claim)
    monkeypatch.setattr(twilio, "_call_context", read)
    with pytest.raises(SignatureError):
        await twilio._claimed_call_context(object(), 1, "CA1", "MZ1")  # type: ignore[arg-type]
    assert read_state == {"started": True, "cancelled": False, "finished": True}


async def test_a_stream_going_away_cancels_the_context_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream's own task is cancelled during the claim (shutdown, the socket gone):
    the read is cancelled with it, not left running."""
    read_state: dict[str, bool] = {"cancelled": False}

    async def claim(_state: Any, _call_id: int, _stream_sid: str) -> None:
        await asyncio.sleep(STEP_S)

    async def read(_state: Any, _call_id: int, _call_sid: str) -> Any:
        try:
            await asyncio.sleep(STEP_S * 2)
        except asyncio.CancelledError:
            read_state["cancelled"] = True
            raise
        return None, None, None

    monkeypatch.setattr(twilio, "_claim_call", claim)
    monkeypatch.setattr(twilio, "_call_context", read)
    task = asyncio.create_task(twilio._claimed_call_context(object(), 1, "CA1", "MZ1"))  # type: ignore[arg-type]
    await asyncio.sleep(STEP_S / 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert read_state == {"cancelled": True}


async def test_postgres_down_at_the_start_leaves_the_call_up() -> None:
    """Postgres refusing connections (nothing listens on its port) at the stream's start:
    the claim is skipped and the context is empty, as for any database failure, instead
    of ConnectionRefusedError escaping the websocket handler."""
    port = free_port()
    settings = make_settings(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x")
    engine = create_engine(settings)
    state = SimpleNamespace(
        sessions=create_sessionmaker(engine),
        autocommit=create_sessionmaker(create_autocommit_engine(settings, engine)),
        settings=settings,
    )
    try:
        with capture_logs() as logs:
            got = await twilio._claimed_call_context(state, 1, "CA1", "MZ1")  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert got == (None, None, None)
    events = {entry["event"] for entry in logs}
    assert {"twilio.stream_claim_failed", "call.context_unavailable"} <= events
