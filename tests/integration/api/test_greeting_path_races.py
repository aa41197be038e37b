"""The greeting path against the real databases: the voice webhook racing a status
callback and itself, and the autocommit engine's connection settings."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from tests.integration.api.voice_webhook_support import (
    AUTH_TOKEN,
    app_state,
    post_voice,
    stream_settings,
)
from voicebot.api import twilio
from voicebot.api.twilio_common import load_agent_script
from voicebot.config import Settings
from voicebot.db.models import Call, CallStatus, Lead
from voicebot.errors import SignatureError

PHONE = "+972544567891"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return stream_settings(database_url, tmp_path)


_state = app_state


async def _voice(client: httpx.AsyncClient, settings: Settings, sid: str) -> httpx.Response:
    return await post_voice(
        client,
        settings,
        sid,
        from_number=PHONE,
        direction="inbound",
    )


async def _status(
    client: httpx.AsyncClient, settings: Settings, sid: str, status: str
) -> httpx.Response:
    form = {"CallSid": sid, "CallStatus": status, "CallDuration": "3"}
    path = "/twilio/status"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        settings.public_base_url + path, form
    )
    return await client.post(path, data=form, headers={"X-Twilio-Signature": signature})


async def test_a_final_status_during_the_webhooks_reads_is_not_overwritten(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller hangs up while the voice webhook reads the call's lead and script: the
    status callback's 'completed' stands; the webhook's later write does not move the call
    back to in-progress (its read of the call was stale)."""
    async with _state(app).sessions() as db:
        db.add(Call(call_sid="CAraces1", direction="inbound", status=CallStatus.RINGING))
        await db.commit()
    real_script = load_agent_script
    callbacks: list[asyncio.Task[httpx.Response]] = []

    async def script_while_hanging_up(*args: Any) -> Any:
        if not callbacks:
            callbacks.append(
                asyncio.create_task(_status(client, settings, "CAraces1", "completed"))
            )
            # SQLite: the callback commits now. Postgres: it waits on the webhook's lock.
            await asyncio.wait(callbacks, timeout=1.0)
        return await real_script(*args)

    monkeypatch.setattr(twilio, "load_agent_script", script_while_hanging_up)
    answer = await asyncio.wait_for(_voice(client, settings, "CAraces1"), timeout=15)
    callback = await asyncio.wait_for(callbacks[0], timeout=15)
    assert callback.status_code in (200, 204)
    assert answer.status_code == 200 and "<Response" in answer.text
    async with _state(app).sessions() as db:
        call = (await db.scalars(select(Call).where(Call.call_sid == "CAraces1"))).one()
    assert call.status == CallStatus.COMPLETED
    assert call.ended_at is not None


async def test_twenty_webhooks_for_one_new_sid(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Twilio retrying one inbound call's webhook 20 times at once: one call row, and every
    answer connects the stream (no 500, no 503)."""
    answers = await asyncio.wait_for(
        asyncio.gather(*(_voice(client, settings, "CAraces20") for _ in range(20))), timeout=60
    )
    codes = [a.status_code for a in answers]
    assert codes == [200] * 20, codes
    assert all("<Stream" in a.text for a in answers)
    async with _state(app).sessions() as db:
        rows = (await db.scalars(select(Call).where(Call.call_sid == "CAraces20"))).all()
    assert len(rows) == 1
    assert rows[0].status == CallStatus.IN_PROGRESS


async def test_the_autocommit_engine_has_the_engines_settings(app: Starlette) -> None:
    """The claim's and turn writes' engine: WAL, busy timeout, synchronous NORMAL and
    foreign keys on SQLite; the statement timeout on Postgres."""
    state = _state(app)
    timeout_ms = state.settings.db_statement_timeout_ms
    async with state.autocommit() as db:
        conn = await db.connection()
        if state.engine.dialect.name == "sqlite":
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
            }
            assert pragmas == {
                "journal_mode": "wal",
                "busy_timeout": timeout_ms,
                "synchronous": 1,
                "foreign_keys": 1,
            }
        else:
            shown = (await conn.execute(text("SHOW statement_timeout"))).scalar()
            assert shown in (f"{timeout_ms}ms", f"{timeout_ms // 1000}s")
            level = (await conn.execute(text("SHOW transaction_isolation"))).scalar()
            assert level == "read committed"
    # The transactional sessions still run in transactions after the autocommit ones.
    if state.engine.dialect.name == "postgresql":
        async with state.sessions() as db:
            await db.execute(text("SELECT 1"))
            assert (await db.connection()).in_transaction()


async def _new_call(app: Starlette, sid: str, status: CallStatus = CallStatus.IN_PROGRESS) -> int:
    async with _state(app).sessions() as db:
        call = Call(call_sid=sid, direction="inbound", status=status)
        db.add(call)
        await db.commit()
        return call.id


async def test_ten_streams_claiming_one_call_one_wins(app: Starlette) -> None:
    """A stream token replayed on ten sockets at once: one claim binds the call, the other
    nine are refused (none slips through as 'database unavailable, go on unclaimed')."""
    call_id = await _new_call(app, "CAclaim10")
    results = await asyncio.gather(
        *(
            twilio._claimed_call_context(_state(app), call_id, "CAclaim10", f"MZ{i:032d}")
            for i in range(10)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, SignatureError)]
    assert len(refused) == 9, results
    async with _state(app).sessions() as db:
        call = await db.get(Call, call_id)
    assert call is not None and call.stream_sid is not None


@pytest.mark.parametrize("status", [CallStatus.COMPLETED, CallStatus.CANCELED])
async def test_a_stream_for_an_ended_or_missing_call_is_refused(
    app: Starlette, status: CallStatus
) -> None:
    call_id = await _new_call(app, f"CAended{status}", status)
    with pytest.raises(SignatureError):
        await twilio._claimed_call_context(_state(app), call_id, "CAx", "MZ" + "1" * 32)
    with pytest.raises(SignatureError):
        await twilio._claimed_call_context(_state(app), call_id + 1000, "CAx", "MZ" + "2" * 32)


async def test_a_refused_claim_leaves_the_read_and_its_connection_alone(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token replayed after the call ended, while the stream's context read is still in
    the database: the claim is refused once the read has finished. Cancelling the read
    mid-query cost the pooled connection (invalidated), and on asyncpg its cancel request
    left a future nobody retrieved, logged by asyncio as "Future exception was never
    retrieved ... unexpected connection_lost() call" (MagicStack/asyncpg#1310)."""
    state = _state(app)
    postgres = state.engine.dialect.name == "postgresql"
    real_lead_context = twilio.lead_context

    async def slow_lead_context(db: Any, call: Call) -> Any:
        if postgres:
            await db.execute(text("SELECT pg_sleep(0.2)"))
        else:
            await asyncio.sleep(0.2)
        return await real_lead_context(db, call)

    monkeypatch.setattr(twilio, "lead_context", slow_lead_context)
    invalidated: list[object] = []
    for engine in {state.engine.sync_engine, state.autocommit.kw["bind"].sync_engine}:
        event.listen(engine, "invalidate", lambda *args: invalidated.append(args))
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        for i in range(3):
            call_id = await _new_call(app, f"CAreplay{i}", CallStatus.COMPLETED)
            with pytest.raises(SignatureError):
                await twilio._claimed_call_context(state, call_id, f"CAreplay{i}", f"MZ{i:032d}")
        await asyncio.sleep(0.3)  # an abandoned cancel request would finish by now
        gc.collect()  # "never retrieved" is reported when the future is collected
    finally:
        loop.set_exception_handler(None)
    assert invalidated == []
    assert unhandled == []


async def test_connections_killed_before_the_claim_the_call_goes_on(app: Starlette) -> None:
    """Postgres terminates every connection of the pool (a failover) right before a stream's
    start: the claim and the context read degrade (the call goes on unclaimed, default
    script), and the next stream's claim works on fresh connections."""
    state = _state(app)
    if state.engine.dialect.name != "postgresql":
        pytest.skip("pg_terminate_backend is Postgres's")
    first = await _new_call(app, "CAkill1")
    second = await _new_call(app, "CAkill2")
    async with state.sessions() as db:  # warm: every pooled connection used once
        await db.execute(select(Call).limit(1))
    killer = create_async_engine(state.settings.database_url, poolclass=NullPool)
    try:
        async with killer.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await killer.dispose()
    context = await asyncio.wait_for(
        twilio._claimed_call_context(state, first, "CAkill1", "MZ" + "3" * 32), timeout=10
    )
    assert len(context) == 3
    await twilio._claimed_call_context(state, second, "CAkill2", "MZ" + "4" * 32)
    async with state.sessions() as db:
        claimed = await db.get(Call, second)
    assert claimed is not None and claimed.stream_sid == "MZ" + "4" * 32


async def test_twenty_webhooks_for_one_ringing_call(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Twenty webhooks for one existing ringing call at once: all but one find the row moved
    under their read (in-progress since) and run again; every answer is TwiML, the row is
    answered once."""
    call_id = await _new_call(app, "CAring20", CallStatus.RINGING)
    answers = await asyncio.wait_for(
        asyncio.gather(*(_voice(client, settings, "CAring20") for _ in range(20))), timeout=60
    )
    codes = [a.status_code for a in answers]
    assert codes == [200] * 20, codes
    assert all("<Stream" in a.text for a in answers)
    async with _state(app).sessions() as db:
        call = await db.get(Call, call_id)
    assert call is not None and call.status == CallStatus.IN_PROGRESS


async def test_a_failed_webhook_stores_neither_the_call_nor_the_new_lead(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unknown number calls in and the webhook's transaction fails after the new lead and
    the call were added: neither is stored (on SQLite the lead's savepoint, opened outside a
    transaction, committed it on its own)."""

    async def failing_emit(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(twilio, "emit", failing_emit)
    answer = await _voice(client, settings, "CAhalf")
    assert answer.status_code == 503
    async with _state(app).sessions() as db:
        leads = await db.scalar(select(func.count()).select_from(Lead))
        calls = await db.scalar(select(func.count()).select_from(Call))
    assert (leads, calls) == (0, 0)


async def test_one_unknown_number_calling_twice_at_once(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Two calls (two SIDs) from one unknown number at once: one new lead, both calls on it,
    both connect the stream."""
    answers = await asyncio.wait_for(
        asyncio.gather(*(_voice(client, settings, f"CAtwice{i}") for i in range(6))), timeout=60
    )
    assert [a.status_code for a in answers] == [200] * 6
    async with _state(app).sessions() as db:
        leads = (await db.scalars(select(Lead).where(Lead.phone == PHONE))).all()
        calls = (await db.scalars(select(Call).where(Call.call_sid.like("CAtwice%")))).all()
    assert len(leads) == 1
    assert len(calls) == 6 and {c.lead_id for c in calls} == {leads[0].id}
