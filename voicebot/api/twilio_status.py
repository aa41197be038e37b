"""Twilio's status callbacks: monotonic, idempotent, and the outcome of calls that never talked.

Status callbacks may reach any web instance, so everything here goes through the
database and the turn-state store, never in-process memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from voicebot.api import twilio_gather
from voicebot.api.spec import FORM, Returns, operation
from voicebot.api.state import AppState, app_state
from voicebot.api.twilio_common import StatusForm, lead_context, signed_form
from voicebot.api.twilio_status_final import FinalStatement, Settled, log_settled
from voicebot.api.twilio_status_sql import ProgressStatement
from voicebot.brain.base import ConversationState
from voicebot.brain.summary import CallFacts, rule_summary
from voicebot.call.registry import CallRegistry
from voicebot.config import Settings
from voicebot.db.locks import lock_call_rows, lock_conflict_retrying, note_locked
from voicebot.db.models import (
    Call,
    CallStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    Lead,
    TwilioEvent,
)
from voicebot.db.outcomes import STATUS_OUTCOMES, record_outcome
from voicebot.db.types import utcnow
from voicebot.jobs.dial import note_sid

log = structlog.get_logger(__name__)

# Twilio's status order; a later status never goes back to an earlier one.
STATUS_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.INITIATED: 1,
    CallStatus.RINGING: 2,
    CallStatus.IN_PROGRESS: 3,
    CallStatus.COMPLETED: 4,
    CallStatus.BUSY: 4,
    CallStatus.NO_ANSWER: 4,
    CallStatus.FAILED: 4,
    CallStatus.CANCELED: 4,
}
FINAL_RANK = 4
ANSWERED_BY_MAX_CHARS = 32
ATTEMPT_ID_MAX_DIGITS = 12
ATTEMPT_ID_MAX = 2**31 - 1
"""The largest ``campaign_attempts.id`` (a Postgres ``integer``): a larger bound value
fails asyncpg's encoding (a 500 that Twilio retries), so it names no attempt."""
RETRY_AFTER_S = 1
"""Retry-After of the 503 answered when no database connection frees up in time."""
PROGRESS = ProgressStatement(STATUS_RANK)
"""A progress status (rank below final) on Postgres: one statement, see twilio_status_sql."""
FINAL = FinalStatement(STATUS_RANK)
"""A final status with an attempt id on Postgres: one statement, see twilio_status_final."""


@operation(
    summary="Status callback (Twilio)",
    tags=("twilio",),
    description="Signed by Twilio. Monotonic and idempotent on I-Twilio-Idempotency-Token.",
    body=StatusForm,
    body_media_type=FORM,
    headers=(
        ("X-Twilio-Signature", "Twilio's request signature"),
        ("I-Twilio-Idempotency-Token", "at most 128 characters"),
    ),
    replies=(Returns(204),),
    errors=(403, 422),
    public=True,
)
async def status(request: Request) -> Response:
    """Record status transitions: monotonic, idempotent on Twilio's idempotency token.

    The call is found by the attempt id in the URL (campaign calls: the row exists before
    the REST call, so a callback that beats the dialer's commit of the SID still finds it),
    else by ``CallSid``. A call that ends without a conversation (busy, no answer, failed,
    canceled) gets its outcome here; a ``<Gather>`` call whose caller hung up
    mid-conversation is finished.
    """
    params = await signed_form(request, StatusForm)
    if isinstance(params, Response):
        return params
    call_sid = params.get("CallSid", "")
    new_status = params.get("CallStatus", "")
    if new_status not in {s.value for s in CallStatus}:
        return Response("unknown CallStatus", status_code=400)
    state = app_state(request)
    if STATUS_RANK[CallStatus(new_status)] == FINAL_RANK:
        # The call is over: a stream that starts now claims before it greets (refused).
        registry: CallRegistry | None = state.extras.get("call_registry")
        if registry is not None:
            registry.handoffs.drop(call_sid)
    token = request.headers.get("i-twilio-idempotency-token")
    attempt_param = request.query_params.get("attempt")
    try:
        if (
            STATUS_RANK[CallStatus(new_status)] < FINAL_RANK
            and state.engine.dialect.name == "postgresql"
        ):
            duration = params.get("CallDuration")
            async for run in lock_conflict_retrying():
                with run:
                    applied = await PROGRESS.apply(
                        state.engine,
                        token=token[:128] if token else None,
                        attempt_id=attempt_id(attempt_param),
                        call_sid=call_sid,
                        status=new_status,
                        duration_s=int(duration) if duration and duration.isdigit() else None,
                        answered_by=(params.get("AnsweredBy") or "")[:ANSWERED_BY_MAX_CHARS]
                        or None,
                        now=utcnow(),
                    )
            if not applied.duplicate and applied.call_id is None:
                log.warning("twilio.status_unknown_call", call_sid=call_sid)
            return Response(status_code=204)
        # A final status naming its attempt: one statement, unless it leaves the case
        # (a webhook to report, rows found only by SID) to the ORM transaction below.
        wanted = attempt_id(attempt_param)
        if (
            wanted is not None
            and state.engine.dialect.name == "postgresql"
            and not state.settings.webhook_url
        ):
            final = await _settle_final(state, params, token, wanted)
            if final.duplicate:
                return Response(status_code=204)
            if not final.fallback:
                if final.call_id is not None:
                    return _answer(state, final.call_id, call_sid, hung_up=final.hung_up)
                token = None  # recorded in the ledger by the statement
        # A deadlock or serialization failure aborts the whole transaction (the ledger
        # row with it): rerun it, a few times, rather than answer Twilio a 500.
        settled: tuple[int, bool] | None = None
        async for run in lock_conflict_retrying():
            with run:
                settled = await _settle(state, params, token, attempt_param)
        if settled is None:
            return Response(status_code=204)
        call_id, hung_up = settled
    except PoolTimeoutError:
        # Every connection busy for the pool's bounded wait: say so (Twilio's record is
        # settled by the reconciler if it does not retry), never a 500 nor an endless queue.
        log.warning("twilio.status_overloaded", call_sid=call_sid, status=new_status)
        return Response(
            "database busy", status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )
    return _answer(state, call_id, call_sid, hung_up=hung_up)


def _answer(state: AppState, call_id: int, call_sid: str, *, hung_up: bool) -> Response:
    """The 204; a call hung up mid-conversation is finished after it is sent."""
    if hung_up:
        finish = BackgroundTask(
            twilio_gather.finish_after_hangup,
            state.extras["call_services"],
            call_id=call_id,
            call_sid=call_sid,
        )
        return Response(status_code=204, background=finish)
    return Response(status_code=204)


async def _settle_final(
    state: AppState, params: dict[str, str], token: str | None, wanted: int
) -> Settled:
    """A final status by its attempt id through the one statement (Postgres, no deployment
    webhook), rerun after a deadlock like the ORM transaction; logs what it settled."""
    new_status = params.get("CallStatus", "")
    outcome = STATUS_OUTCOMES.get(new_status)
    duration = params.get("CallDuration")
    settled = Settled(fallback=True, duplicate=False)
    async for run in lock_conflict_retrying():
        with run:
            settled = await FINAL.apply(
                state.engine,
                token=token[:128] if token else None,
                attempt_id=wanted,
                call_sid=params.get("CallSid", ""),
                status=new_status,
                outcome=outcome,
                duration_s=int(duration) if duration and duration.isdigit() else None,
                answered_by=(params.get("AnsweredBy") or "")[:ANSWERED_BY_MAX_CHARS] or None,
                tz=state.settings.tz,
                now=utcnow(),
            )
    log_settled(settled, outcome)
    return settled


async def _settle(
    state: AppState, params: dict[str, str], token: str | None, attempt_param: str | None
) -> tuple[int, bool] | None:
    """One transaction of a final status (or any status on SQLite): the ledger row, the
    rows locked in the lock order, the status and the outcome. Returns the call id and
    whether it was hung up mid-conversation; None when there is nothing more to do (a
    redelivered token, an unknown call)."""
    async with state.sessions() as session:
        return await settle_in(session, state.settings, params, token, attempt_param)


async def settle_in(
    session: AsyncSession,
    settings: Settings,
    params: dict[str, str],
    token: str | None,
    attempt_param: str | None,
) -> tuple[int, bool] | None:
    """:func:`_settle`'s work in ``session``, committed: the same statements whoever runs
    it (the route, and the start-up warm-up in :mod:`voicebot.api.twilio_status_warm`)."""
    call_sid = params.get("CallSid", "")
    new_status = params.get("CallStatus", "")
    if token and not await first_delivery(session, token[:128], kind="status"):
        return None
    call, attempt = await webhook_rows(
        session,
        call_sid,
        attempt_param,
        settling=new_status in STATUS_OUTCOMES or new_status == CallStatus.COMPLETED,
    )
    if call is None:
        log.warning("twilio.status_unknown_call", call_sid=call_sid)
        await session.commit()
        return None
    hung_up = await apply_call_status(
        session,
        settings,
        call,
        new_status,
        duration=params.get("CallDuration"),
        answered_by=params.get("AnsweredBy"),
        attempt=attempt,
    )
    call_id = call.id
    await session.commit()
    return call_id, hung_up


async def first_delivery(session: AsyncSession, token: str, *, kind: str) -> bool:
    """Record Twilio's idempotency ``token`` in the ledger in the caller's transaction;
    False when it is already there (a redelivery: do nothing). One statement, no
    exception path: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` (Postgres and SQLite);
    a concurrent delivery of the same token waits for the first one's commit."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(TwilioEvent)
        .values(token=token, kind=kind, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[TwilioEvent.token])
        .returning(TwilioEvent.id)
    )
    return (await session.execute(statement)).first() is not None


async def webhook_call(
    session: AsyncSession, call_sid: str, attempt_param: str | None
) -> Call | None:
    """The call row a webhook is about, locked for this transaction: by the attempt id in
    the URL when there is one (storing the SID if the dialer has not yet), else by SID."""
    call, _ = await webhook_rows(session, call_sid, attempt_param)
    return call


async def webhook_rows(
    session: AsyncSession, call_sid: str, attempt_param: str | None, *, settling: bool = False
) -> tuple[Call | None, CampaignAttempt | None]:
    """:func:`webhook_call`, with the campaign attempt when the URL names one. One round
    trip locks both rows (attempt first, as the dialer's ``record_sid``); ``settling``
    (a final status) also loads the member, campaign and lead that the outcome moves, so
    settling them issues no further SELECT."""
    wanted = attempt_id(attempt_param)
    if wanted is not None:
        by_attempt = CampaignAttempt.id == wanted
        row: Sequence[Any] | None
        if settling:
            row = (
                await session.execute(
                    select(CampaignAttempt, Call, CampaignLead, Campaign, Lead)
                    .join(Call, Call.id == CampaignAttempt.call_id)
                    .join(CampaignLead, CampaignLead.id == CampaignAttempt.member_id)
                    .join(Campaign, Campaign.id == CampaignAttempt.campaign_id)
                    .join(Lead, Lead.id == CampaignAttempt.lead_id)
                    .where(by_attempt)
                    # The lock order (voicebot.db.locks): Postgres locks a joined row's
                    # tables in the order of this OF list.
                    .with_for_update(of=[CampaignAttempt, Call, CampaignLead, Lead], key_share=True)
                )
            ).first()
        else:
            row = (
                await session.execute(
                    select(CampaignAttempt, Call)
                    .join(Call, Call.id == CampaignAttempt.call_id)
                    .where(by_attempt)
                    .with_for_update(of=[CampaignAttempt, Call], key_share=True)
                )
            ).first()
        if row is not None:
            attempt, call = row[0], row[1]
            # The identity map holds rows weakly: keep the preloaded ones for this session.
            session.info["webhook_rows"] = tuple(row)
            if settling and call.lead_id == attempt.lead_id:
                note_locked(session, call.id)  # member and lead too: record_outcome's rows
            if call_sid:
                note_sid(attempt, call, call_sid)
            return call, attempt
    if not call_sid:
        return None, None
    found_id = await session.scalar(select(Call.id).where(Call.call_sid == call_sid))
    if found_id is None:
        return None, None
    # A campaign call found by SID has an attempt to lock before it (the lock order).
    return await lock_call_rows(session, found_id, refresh=True), None


def attempt_id(attempt_param: str | None) -> int | None:
    """The attempt id a webhook URL carries (``?attempt=``), None when absent, not a
    plain decimal of at most ``ATTEMPT_ID_MAX_DIGITS`` digits, or above ``ATTEMPT_ID_MAX``."""
    if (
        attempt_param
        and attempt_param.isascii()  # isdigit() alone lets "²" through to int()
        and attempt_param.isdigit()
        and len(attempt_param) <= ATTEMPT_ID_MAX_DIGITS
        and int(attempt_param) <= ATTEMPT_ID_MAX
    ):
        return int(attempt_param)
    return None


async def apply_call_status(
    session: AsyncSession,
    settings: Settings,
    call: Call,
    new_status: str,
    *,
    duration: str | None = None,
    answered_by: str | None = None,
    attempt: CampaignAttempt | None = None,
) -> bool:
    """Move ``call`` to ``new_status`` (never backwards) and give a call that never talked
    its outcome; the caller commits. Used by the callback and by the reconciler (Twilio's
    own record). True when a completed call has no outcome yet (a hang-up mid-conversation).
    """
    call.status_events = [*(call.status_events or []), new_status]
    if STATUS_RANK[CallStatus(new_status)] > STATUS_RANK.get(CallStatus(call.status), 0):
        call.status = new_status
        if STATUS_RANK[CallStatus(new_status)] == FINAL_RANK:
            call.ended_at = call.ended_at or utcnow()
        if duration:
            call.duration_s = int(duration) if duration.isdigit() else call.duration_s
    if answered_by:
        call.answered_by = answered_by[:ANSWERED_BY_MAX_CHARS]
    if call.outcome is None and new_status in STATUS_OUTCOMES:
        outcome = STATUS_OUTCOMES[new_status]
        # Summary first: one UPDATE of the call, and the end-of-call report carries it.
        facts = CallFacts(outcome, settings.tz)
        lead = await lead_context(session, call)
        call.summary = call.summary or rule_summary(ConversationState(lead=lead), facts)
        await record_outcome(session, call, outcome, attempt=attempt, settings=settings)
    return call.outcome is None and new_status == CallStatus.COMPLETED
