"""The voice webhook reads first and writes last: on SQLite, where the transaction begins at
its first write, no read runs between that write and the COMMIT (the write lock every
stream claim and turn write waits on is held for the writes alone); two webhooks for one
new call SID at once leave one call row and both connect the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from starlette.applications import Starlette

from tests.integration.api.voice_webhook_support import (
    app_state,
    post_voice,
    stream_settings,
)
from voicebot.api import twilio
from voicebot.config import Settings
from voicebot.db.models import Call, CallStatus, Campaign, Lead

LEAD_PHONE = "+972544567890"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return stream_settings(database_url, tmp_path)


_state = app_state


async def _voice(client: httpx.AsyncClient, settings: Settings, sid: str) -> httpx.Response:
    return await post_voice(
        client,
        settings,
        sid,
        to_number=LEAD_PHONE,
    )


async def test_no_read_between_the_first_write_and_the_commit(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """A call with a lead and a campaign: the call, lead and campaign are read before the
    call's UPDATE, and the COMMIT follows it directly."""
    state = _state(app)
    if state.engine.dialect.name != "sqlite":
        pytest.skip("the transaction's start at its first write is SQLite's driver's")
    async with state.sessions() as db:
        lead = Lead(phone=LEAD_PHONE, status="new")
        campaign = Campaign(name="writes")
        db.add_all([lead, campaign])
        await db.flush()
        db.add(
            Call(
                call_sid="CAwrites1",
                direction="outbound",
                status=CallStatus.RINGING,
                lead_id=lead.id,
                campaign_id=campaign.id,
            )
        )
        await db.commit()
    trace: list[str] = []

    def on_statement(*args: Any) -> None:
        trace.append(str(args[2]).split()[0].upper())

    def on_commit(*_args: Any) -> None:
        trace.append("COMMIT")

    event.listen(state.engine.sync_engine, "before_cursor_execute", on_statement)
    event.listen(state.engine.sync_engine, "commit", on_commit)
    try:
        response = await _voice(client, settings, "CAwrites1")
    finally:
        event.remove(state.engine.sync_engine, "before_cursor_execute", on_statement)
        event.remove(state.engine.sync_engine, "commit", on_commit)
    assert response.status_code == 200 and "<Stream" in response.text
    first_write = next(i for i, verb in enumerate(trace) if verb in ("INSERT", "UPDATE"))
    assert set(trace[:first_write]) == {"SELECT"}  # the call, its lead, its campaign
    assert trace[first_write:] == ["UPDATE", "COMMIT"]


async def test_two_webhooks_inserting_one_sid_leave_one_row(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both webhooks find no row for a new SID and insert it: the loser's transaction fails
    on the unique SID, runs again and finds the winner's row; both connect the stream."""
    both_looked = asyncio.Barrier(2)
    looked = 0
    real_webhook_call = twilio.webhook_call

    async def racing_lookup(*args: Any) -> Call | None:
        nonlocal looked
        looked += 1
        if looked <= 2:  # the first look of each webhook: neither sees the other's row
            await both_looked.wait()
            return None
        return await real_webhook_call(*args)

    monkeypatch.setattr(twilio, "webhook_call", racing_lookup)
    first, second = await asyncio.wait_for(
        asyncio.gather(
            _voice(client, settings, "CAwrites2"), _voice(client, settings, "CAwrites2")
        ),
        timeout=10,
    )
    assert [first.status_code, second.status_code] == [200, 200]
    assert "<Stream" in first.text and "<Stream" in second.text
    assert looked == 3  # one webhook ran its transaction again
    async with _state(app).sessions() as db:
        rows = (await db.scalars(select(Call).where(Call.call_sid == "CAwrites2"))).all()
    assert len(rows) == 1
    assert rows[0].status == CallStatus.IN_PROGRESS and rows[0].answered_at is not None
