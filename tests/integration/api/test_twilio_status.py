"""Twilio status callbacks on the campaign path (SQLite and Postgres): found by the attempt id
before the dialer stored the SID, idempotent on Twilio's token, monotonic, a final status
settles the member once; with every database connection busy the answer is a 503 with
Retry-After, never a 500."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.models import (
    Call,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    Lead,
    TwilioEvent,
    WebhookDelivery,
)

AUTH_TOKEN = "status-auth-token"
SID = "CA" + "5" * 32


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url=database_url, twilio_auth_token=AUTH_TOKEN)


async def _seed(app: Starlette) -> dict[str, int]:
    """A running campaign with one member being dialed: its attempt and queued call
    committed, no SID yet (the dialer's REST request has not returned)."""
    now = datetime.now(UTC)
    async with app.state.voicebot.sessions() as session:
        lead = Lead(phone="+972544560001", status="new", consent_source="test", tags=[])
        campaign = Campaign(
            name="status",
            status=CampaignStatus.RUNNING,
            calendar="none",
            window_days="sun,mon,tue,wed,thu,fri,sat",
            window_start="00:00",
            window_end="24:00",
            started_at=now,
        )
        session.add_all([lead, campaign])
        await session.flush()
        member = CampaignLead(campaign_id=campaign.id, lead_id=lead.id, state="dialing", attempts=1)
        call = Call(lead_id=lead.id, campaign_id=campaign.id, status="queued", status_events=[])
        session.add_all([member, call])
        await session.flush()
        attempt = CampaignAttempt(
            campaign_id=campaign.id,
            member_id=member.id,
            lead_id=lead.id,
            attempt_no=1,
            idempotency_key="status-1",
            status="dialing",
            call_id=call.id,
        )
        session.add(attempt)
        await session.commit()
        return {"attempt": attempt.id, "call": call.id, "member": member.id, "lead": lead.id}


async def _callback(
    client: httpx.AsyncClient,
    settings: Settings,
    attempt_id: int | None,
    status: str,
    token: str | None,
    *,
    sid: str = SID,
    **extra: str,
) -> httpx.Response:
    path = "/twilio/status" if attempt_id is None else f"/twilio/status?attempt={attempt_id}"
    form = {"CallSid": sid, "CallStatus": status, **extra}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        settings.public_base_url + path, form
    )
    headers = {"X-Twilio-Signature": signature}
    if token is not None:
        headers["I-Twilio-Idempotency-Token"] = token
    return await client.post(path, data=form, headers=headers)


async def _rows(app: Starlette, ids: dict[str, int]) -> dict[str, Any]:
    async with app.state.voicebot.sessions() as session:
        call = await session.get(Call, ids["call"])
        attempt = await session.get(CampaignAttempt, ids["attempt"])
        member = await session.get(CampaignLead, ids["member"])
        lead = await session.get(Lead, ids["lead"])
        events = await session.scalar(select(func.count()).select_from(TwilioEvent))
        assert call and attempt and member and lead
        return {"call": call, "attempt": attempt, "member": member, "lead": lead, "events": events}


async def test_callbacks_are_found_by_attempt_idempotent_and_monotonic(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """A callback before the dialer's SID commit stores the SID and places the attempt; a
    redelivered token changes nothing; a late 'ringing' after 'busy' never moves the call
    back; 'busy' settles the member for a retry and the lead as unreachable, once."""
    ids = await _seed(app)
    first = await _callback(client, settings, ids["attempt"], "initiated", "tok-1")
    assert first.status_code == 204
    rows = await _rows(app, ids)
    assert rows["call"].call_sid == SID
    assert rows["call"].status == "initiated"
    assert (rows["attempt"].call_sid, rows["attempt"].status) == (SID, "placed")

    again = await _callback(client, settings, ids["attempt"], "initiated", "tok-1")
    assert again.status_code == 204
    assert (await _rows(app, ids))["call"].status_events == ["initiated"]

    busy = await _callback(client, settings, ids["attempt"], "busy", "tok-2")
    late = await _callback(client, settings, ids["attempt"], "ringing", "tok-3")
    redelivered = await _callback(client, settings, ids["attempt"], "busy", "tok-2")
    assert [busy.status_code, late.status_code, redelivered.status_code] == [204, 204, 204]
    rows = await _rows(app, ids)
    assert rows["call"].status == "busy"
    assert rows["call"].status_events == ["initiated", "busy", "ringing"]
    assert rows["call"].outcome == "no_answer"
    assert rows["call"].ended_at is not None
    assert rows["attempt"].status == "ended"
    assert rows["member"].state == "retry"
    assert rows["member"].next_attempt_at is not None
    assert rows["lead"].status == "unreachable"
    assert rows["events"] == 3


async def test_every_connection_busy_is_503_with_retry_after(database_url: str) -> None:
    """With the pool's only connection held past its bounded wait, a status callback is a
    503 with Retry-After (and nothing recorded), not a 500; once the connection is free
    the redelivery is applied (Postgres: the SQLite engine has no bounded pool)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the bounded connection pool is Postgres's")
    settings = make_settings(
        database_url=database_url,
        twilio_auth_token=AUTH_TOKEN,
        db_pool_size=1,
        db_max_overflow=0,
        db_statement_timeout_ms=300,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ids = await _seed(app)
            async with app.state.voicebot.engine.connect():
                busy = await _callback(client, settings, ids["attempt"], "ringing", "tok-9")
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == "1"
            assert (await _rows(app, ids))["call"].status == "queued"
            retried = await _callback(client, settings, ids["attempt"], "ringing", "tok-9")
            assert retried.status_code == 204
            assert (await _rows(app, ids))["call"].status == "ringing"


async def test_progress_by_sid_without_attempt_and_for_an_unknown_call(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Without an attempt id the call is found by SID: in-progress stores AnsweredBy and
    CallDuration; a callback without a token is applied each time it comes; an unknown
    SID is a 204 that records its token (a redelivery changes nothing either)."""
    ids = await _seed(app)
    assert (
        await _callback(client, settings, ids["attempt"], "initiated", "p-1")
    ).status_code == 204
    answered = await _callback(
        client, settings, None, "in-progress", "p-2", AnsweredBy="human", CallDuration="7"
    )
    untokened = [await _callback(client, settings, None, "ringing", None) for _ in range(2)]
    assert [answered.status_code, *(r.status_code for r in untokened)] == [204, 204, 204]
    rows = await _rows(app, ids)
    assert rows["call"].status == "in-progress"
    assert (rows["call"].answered_by, rows["call"].duration_s) == ("human", 7)
    assert rows["call"].status_events == ["initiated", "in-progress", "ringing", "ringing"]
    assert rows["events"] == 2

    other = "CA" + "6" * 32
    for _ in range(2):
        unknown = await _callback(client, settings, None, "ringing", "p-3", sid=other)
        assert unknown.status_code == 204
    assert (await _rows(app, ids))["events"] == 3


async def test_unknown_attempt_falls_back_to_the_sid(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """An attempt id that names no attempt still finds the call by its stored SID."""
    ids = await _seed(app)
    await _callback(client, settings, ids["attempt"], "initiated", "f-1")
    moved = await _callback(client, settings, ids["attempt"] + 1000, "ringing", "f-2")
    assert moved.status_code == 204
    assert (await _rows(app, ids))["call"].status == "ringing"


async def test_concurrent_progress_and_final_never_move_back(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """ringing, in-progress and completed of one call arriving at once, each delivered
    twice: the call ends completed with each status recorded exactly once."""
    ids = await _seed(app)
    sends = [
        _callback(client, settings, ids["attempt"], status, f"c-{status}")
        for status in ("ringing", "in-progress", "completed")
        for _ in range(2)
    ]
    answers = await asyncio.gather(*sends)
    assert [a.status_code for a in answers] == [204] * 6
    rows = await _rows(app, ids)
    assert rows["call"].status == "completed"
    assert sorted(rows["call"].status_events) == ["completed", "in-progress", "ringing"]
    assert rows["call"].call_sid == SID
    assert (rows["attempt"].call_sid, rows["events"]) == (SID, 3)


@pytest.mark.parametrize("url", ["https://hooks.example.com/voicebot", None])
async def test_a_final_status_reports_with_its_summary_only_where_a_webhook_is_set(
    database_url: str, url: str | None
) -> None:
    """busy with a webhook configured: one call.completed report that carries the call's
    summary; without a webhook no report is built or recorded."""
    settings = make_settings(
        database_url=database_url, twilio_auth_token=AUTH_TOKEN, webhook_url=url
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            ids = await _seed(app)
            assert (await _callback(c, settings, ids["attempt"], "busy", "w-1")).status_code == 204
        async with app.state.voicebot.sessions() as session:
            reports = (await session.scalars(select(WebhookDelivery))).all()
        summary = (await _rows(app, ids))["call"].summary
    assert summary
    if url is None:
        assert reports == []
    else:
        assert [r.event_type for r in reports] == ["call.completed"]
        assert reports[0].payload["data"]["summary"] == summary
        assert reports[0].payload["data"]["outcome"] == "no_answer"
