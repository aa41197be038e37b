"""The final-status statement and the ORM path agree (Postgres): every final status, and
every outcome, over the campaign, member, attempt, call and lead states that change the
rules, leave the same rows and log the same events by both; what the statement leaves
to the ORM path it leaves untouched, and the route then settles it there."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from structlog.testing import capture_logs
from twilio.request_validator import RequestValidator

from tests.conftest import make_settings
from voicebot.api.twilio_common import lead_context
from voicebot.api.twilio_status import (
    FINAL,
    apply_call_status,
    first_delivery,
    settle_in,
    webhook_rows,
)
from voicebot.api.twilio_status_final import log_settled
from voicebot.app import create_app
from voicebot.brain.base import ConversationState
from voicebot.brain.summary import CallFacts, rule_summary
from voicebot.config import Settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import (
    Call,
    CallOutcome,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    Lead,
    TwilioEvent,
    WebhookDelivery,
)
from voicebot.db.outcomes import STATUS_OUTCOMES, record_outcome
from voicebot.db.types import utcnow

pytestmark = pytest.mark.integration

FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
LOGGED = ("lead.status_changed", "campaign.member_settled")
_numbers = itertools.count()


@dataclass(frozen=True, slots=True)
class World:
    """One campaign call's rows as a case seeds them, and what Twilio's callback carries."""

    member_state: str = "dialing"
    attempts: int = 1
    max_attempts: int = 3
    retry_base_min: int = 30
    retry_max_min: int = 240
    campaign_status: str = "running"
    voicemail_retry: bool = True
    lead_status: str = "new"
    lead_name: str | None = "דנה"
    callback_in_min: int | None = None
    attempt_status: str = "dialing"
    call_status: str = "queued"
    sid_stored: bool = False
    """The dialer stored the SID on the attempt and the call (and the call started)."""
    call_outcome: str | None = None
    summary: str | None = None
    ended: bool = False
    sid_sent: bool = True
    """The callback carries a CallSid (Twilio's always do; a reconciler's may not)."""
    duration: str | None = None
    answered_by: str | None = None


WORLDS = {
    "dialing": World(),
    "in-call": World(
        member_state="in_call",
        attempt_status="placed",
        call_status="in-progress",
        sid_stored=True,
        lead_name=None,
        duration="37",
        answered_by="human",
    ),
    "last-attempt": World(attempts=3),
    "backoff-capped": World(attempts=4, retry_base_min=50, retry_max_min=240),
    "backoff-exponent-capped": World(
        attempts=40, max_attempts=50, retry_base_min=1, retry_max_min=2_000_000
    ),
    "campaign-cancelled": World(campaign_status="cancelled"),
    "campaign-paused": World(campaign_status="paused"),
    "no-voicemail-retry": World(voicemail_retry=False),
    "lead-unreachable": World(lead_status="unreachable"),
    "lead-contacted": World(lead_status="contacted"),
    # Callback and not-interested share a rank: the later conversation's wins.
    "lead-callback": World(lead_status="callback"),
    "lead-booked": World(lead_status="meeting_booked"),
    "lead-do-not-call": World(lead_status="do_not_call"),
    "lead-status-unknown": World(lead_status="legacy"),
    "callback-asked": World(callback_in_min=90),
    "reconciler-settled": World(
        member_state="retry",
        attempt_status="ended",
        call_status="busy",
        sid_stored=True,
        call_outcome="no_answer",
        summary="לא הייתה תשובה.",
        ended=True,
    ),
    "member-already-done": World(member_state="done", attempt_status="placed", sid_stored=True),
    "attempt-already-failed": World(attempt_status="failed", sid_stored=True),
    "summary-kept-empty-name": World(summary="כבר סוכם", lead_name=""),
    "completed-without-outcome": World(
        attempt_status="placed", call_status="completed", sid_stored=True, ended=True
    ),
    "no-sid-sent": World(sid_sent=False, duration="x", answered_by="machine_start"),
}
CASES = [
    *(
        pytest.param(world, status, STATUS_OUTCOMES.get(status), id=f"{name}-{status}")
        for name, world in WORLDS.items()
        for status in FINAL_STATUSES
    ),
    *(
        pytest.param(world, "completed", outcome, id=f"{name}-outcome-{outcome.value}")
        for name, world in WORLDS.items()
        for outcome in CallOutcome
    ),
]


@pytest.fixture(scope="module")
def pg_settings(postgres_url: str) -> Settings:
    return make_settings(database_url=postgres_url, twilio_auth_token="final-token")


@pytest.fixture
async def engine(pg_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_settings)
    yield engine
    await engine.dispose()


async def _seed(sessions: async_sessionmaker[AsyncSession], world: World) -> dict[str, Any]:
    """The world's rows, stamped a day ago (so a row the callback touches shows it)."""
    then = utcnow() - timedelta(days=1)
    n = next(_numbers)
    sid = f"CA{secrets.token_hex(12)}{n:08d}"
    stamps = {"created_at": then, "updated_at": then}
    async with sessions() as session:
        lead = Lead(
            phone=f"+97255{secrets.randbelow(10**4):04d}{n:04d}",
            name=world.lead_name,
            status=world.lead_status,
            consent_source="test",
            tags=[],
            callback_at=then + timedelta(days=1, minutes=world.callback_in_min)
            if world.callback_in_min is not None
            else None,
            **stamps,
        )
        campaign = Campaign(
            name="final",
            status=world.campaign_status,
            calendar="none",
            max_attempts=world.max_attempts,
            retry_base_min=world.retry_base_min,
            retry_max_min=world.retry_max_min,
            voicemail_retry=world.voicemail_retry,
            started_at=then,
            **stamps,
        )
        session.add_all([lead, campaign])
        await session.flush()
        member = CampaignLead(
            campaign_id=campaign.id,
            lead_id=lead.id,
            state=world.member_state,
            attempts=world.attempts,
            next_attempt_at=then,
            **stamps,
        )
        call = Call(
            lead_id=lead.id,
            campaign_id=campaign.id,
            status=world.call_status,
            status_events=[world.call_status] if world.call_status != "queued" else [],
            call_sid=sid if world.sid_stored else None,
            started_at=then if world.sid_stored else None,
            ended_at=then if world.ended else None,
            outcome=world.call_outcome,
            summary=world.summary,
            **stamps,
        )
        session.add_all([member, call])
        await session.flush()
        attempt = CampaignAttempt(
            campaign_id=campaign.id,
            member_id=member.id,
            lead_id=lead.id,
            attempt_no=world.attempts,
            idempotency_key=f"final-{secrets.token_hex(8)}",
            status=world.attempt_status,
            call_id=call.id,
            call_sid=sid if world.sid_stored else None,
            placed_at=then if world.sid_stored else None,
            **stamps,
        )
        session.add(attempt)
        await session.commit()
        return {
            "attempt": attempt.id,
            "call": call.id,
            "member": member.id,
            "lead": lead.id,
            "sid": sid,
            "then": then,
        }


def _form(world: World, ids: dict[str, Any], status: str) -> dict[str, str]:
    form = {"CallSid": ids["sid"] if world.sid_sent else "", "CallStatus": status}
    if world.duration is not None:
        form["CallDuration"] = world.duration
    if world.answered_by is not None:
        form["AnsweredBy"] = world.answered_by
    return form


async def _by_orm(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    ids: dict[str, Any],
    form: dict[str, str],
    token: str,
    outcome: CallOutcome | None,
) -> None:
    """The ORM path: the route's own ``settle_in`` for a status's outcome; another outcome
    as apply_call_status gives one (summary, then ``record_outcome``)."""
    async with sessions() as session:
        if outcome == STATUS_OUTCOMES.get(form["CallStatus"]):
            await settle_in(session, settings, form, token, str(ids["attempt"]))
            return
        assert await first_delivery(session, token, kind="status")
        call, attempt = await webhook_rows(
            session, form["CallSid"], str(ids["attempt"]), settling=True
        )
        assert call is not None
        await apply_call_status(
            session,
            settings,
            call,
            form["CallStatus"],
            duration=form.get("CallDuration"),
            answered_by=form.get("AnsweredBy"),
            attempt=attempt,
        )
        if call.outcome is None and outcome is not None:
            lead = await lead_context(session, call)
            facts = CallFacts(outcome, settings.tz)
            call.summary = call.summary or rule_summary(ConversationState(lead=lead), facts)
            await record_outcome(session, call, outcome, attempt=attempt, settings=settings)
        await session.commit()


async def _by_statement(
    engine: AsyncEngine,
    settings: Settings,
    ids: dict[str, Any],
    form: dict[str, str],
    token: str,
    outcome: CallOutcome | None,
) -> None:
    """The route's statement, with the route's parsing of the form."""
    duration = form.get("CallDuration")
    settled = await FINAL.apply(
        engine,
        token=token,
        attempt_id=ids["attempt"],
        call_sid=form["CallSid"],
        status=form["CallStatus"],
        outcome=outcome,
        duration_s=int(duration) if duration and duration.isdigit() else None,
        answered_by=form.get("AnsweredBy") or None,
        tz=settings.tz,
        now=utcnow(),
    )
    assert not settled.fallback and not settled.duplicate and settled.call_id == ids["call"]
    log_settled(settled, outcome)


def _when(value: datetime | None, then: datetime, ran: datetime) -> str | int | None:
    """A timestamp as the seed's (``"seed"``), or whole minutes after the run started."""
    if value is None:
        return None
    if value == then:
        return "seed"
    return round((value - ran).total_seconds() / 60)


async def _snapshot(
    sessions: async_sessionmaker[AsyncSession], ids: dict[str, Any], ran: datetime, token: str
) -> dict[str, Any]:
    then = ids["then"]
    async with sessions() as session:
        call = await session.get(Call, ids["call"])
        attempt = await session.get(CampaignAttempt, ids["attempt"])
        member = await session.get(CampaignLead, ids["member"])
        lead = await session.get(Lead, ids["lead"])
        ledger = await session.scalar(
            select(func.count()).select_from(TwilioEvent).where(TwilioEvent.token == token)
        )
    assert call and attempt and member and lead
    sid = ids["sid"]
    return {
        "call": {
            "status": call.status,
            "status_events": call.status_events,
            "outcome": call.outcome,
            "summary": call.summary,
            "sid": call.call_sid == sid if call.call_sid else None,
            "duration_s": call.duration_s,
            "answered_by": call.answered_by,
            "started_at": _when(call.started_at, then, ran),
            "ended_at": _when(call.ended_at, then, ran),
            "updated_at": _when(call.updated_at, then, ran),
        },
        "attempt": {
            "status": attempt.status,
            "sid": attempt.call_sid == sid if attempt.call_sid else None,
            "placed_at": _when(attempt.placed_at, then, ran),
            "ended_at": _when(attempt.ended_at, then, ran),
            "updated_at": _when(attempt.updated_at, then, ran),
        },
        "member": {
            "state": member.state,
            "last_outcome": member.last_outcome,
            "attempts": member.attempts,
            "next_attempt_at": _when(member.next_attempt_at, then, ran),
            "updated_at": _when(member.updated_at, then, ran),
        },
        "lead": {
            "status": lead.status,
            "callback_at": lead.callback_at is not None,
            "updated_at": _when(lead.updated_at, then, ran),
        },
        "ledger": ledger,
    }


def _events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The settling events, without the ids that differ between the two worlds."""
    return [
        {k: v for k, v in event.items() if k not in {"lead_id", "call_id", "campaign_id"}}
        for event in logs
        if event["event"] in LOGGED
    ]


@pytest.mark.parametrize(("world", "status", "outcome"), CASES)
async def test_statement_and_orm_path_leave_the_same_rows(
    engine: AsyncEngine,
    pg_settings: Settings,
    world: World,
    status: str,
    outcome: CallOutcome | None,
) -> None:
    """Two copies of one world, one settled by the ORM path and one by the statement:
    the call, attempt, member, lead and ledger rows and the logged events are the same."""
    sessions = create_sessionmaker(engine)
    results = []
    for run in (_by_orm, _by_statement):
        ids = await _seed(sessions, world)
        token = f"final-{secrets.token_hex(12)}"
        form = _form(world, ids, status)
        ran = utcnow()
        with capture_logs() as logs:
            if run is _by_orm:
                await _by_orm(sessions, pg_settings, ids, form, token, outcome)
            else:
                await _by_statement(engine, pg_settings, ids, form, token, outcome)
        results.append((await _snapshot(sessions, ids, ran, token), _events(logs)))
    (orm_rows, orm_events), (sql_rows, sql_events) = results
    assert sql_rows == orm_rows
    assert sql_events == orm_events


async def test_a_redelivered_token_changes_nothing(
    engine: AsyncEngine, pg_settings: Settings
) -> None:
    """The same final status twice with one token: the second is a duplicate, the rows
    stay as the first left them."""
    sessions = create_sessionmaker(engine)
    ids = await _seed(sessions, World())
    form = _form(World(), ids, "busy")
    token = f"final-{secrets.token_hex(12)}"
    ran = utcnow()
    await _by_statement(engine, pg_settings, ids, form, token, CallOutcome.NO_ANSWER)
    first = await _snapshot(sessions, ids, ran, token)
    again = await FINAL.apply(
        engine,
        token=token,
        attempt_id=ids["attempt"],
        call_sid=ids["sid"],
        status="busy",
        outcome=CallOutcome.NO_ANSWER,
        duration_s=None,
        answered_by=None,
        tz=pg_settings.tz,
        now=utcnow(),
    )
    assert again.duplicate and not again.fallback
    assert await _snapshot(sessions, ids, ran, token) == first


async def test_what_the_statement_leaves_to_the_orm_path_it_does_not_touch(
    engine: AsyncEngine, pg_settings: Settings
) -> None:
    """An unknown attempt id, and a campaign with its own webhook: fallback, no ledger row
    and no row changed."""
    sessions = create_sessionmaker(engine)
    ids = await _seed(sessions, World())
    async with sessions() as session:
        campaign_id = (await session.get(Call, ids["call"])).campaign_id  # type: ignore[union-attr]
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None
        campaign.webhook_url = "https://hooks.example.com/voicebot"
        await session.commit()
    ran = utcnow()
    token = f"final-{secrets.token_hex(12)}"
    before = await _snapshot(sessions, ids, ran, token)
    for attempt_id in (ids["attempt"], ids["attempt"] + 10**6):
        settled = await FINAL.apply(
            engine,
            token=token,
            attempt_id=attempt_id,
            call_sid=ids["sid"],
            status="busy",
            outcome=CallOutcome.NO_ANSWER,
            duration_s=None,
            answered_by=None,
            tz=pg_settings.tz,
            now=utcnow(),
        )
        assert settled.fallback
    assert await _snapshot(sessions, ids, ran, token) == before


async def test_a_campaign_webhook_is_reported_through_the_orm_path(
    postgres_url: str,
) -> None:
    """Through the route: busy for a campaign with its own webhook (none deployment-wide)
    settles the call and records one call.completed report carrying its summary."""
    settings = make_settings(database_url=postgres_url, twilio_auth_token="final-token")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        sessions = app.state.voicebot.sessions
        ids = await _seed(sessions, World())
        async with sessions() as session:
            call = await session.get(Call, ids["call"])
            assert call is not None
            campaign = await session.get(Campaign, call.campaign_id)
            assert campaign is not None
            campaign.webhook_url = "https://hooks.example.com/voicebot"
            await session.commit()
        path = f"/twilio/status?attempt={ids['attempt']}"
        form = {"CallSid": ids["sid"], "CallStatus": "busy"}
        signature = RequestValidator("final-token").compute_signature(
            settings.public_base_url + path, form
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.post(
                path,
                data=form,
                headers={"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": "wh-1"},
            )
        assert answer.status_code == 204
        async with sessions() as session:
            call = await session.get(Call, ids["call"])
            reports = (
                await session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.campaign_id == campaign.id)
                )
            ).all()
    assert call is not None and call.outcome == "no_answer"
    assert [r.payload["data"]["summary"] for r in reports] == [call.summary]
