"""The one row-lock order for a call's rows, and the retry of a transaction Postgres aborted
to break a lock cycle.

Lock order: **attempt → call → member → lead** (``campaign_attempts``, ``calls``,
``campaign_leads``, ``leads``; several rows of one table by id). A transaction that writes
more than one of them locks them in this order *before its first write*, so the unit of
work's flush order (which sorts tables by their foreign keys, not by our order) never takes
a lock out of turn. The locks are ``FOR NO KEY UPDATE`` (what an UPDATE takes): they do not
block the ``KEY SHARE`` locks that inserts referencing the row take (turns, meetings,
webhook deliveries); ``FOR UPDATE`` would.

Who locks what (Postgres; SQLite has one writer at a time), in order:

- sweeper claim (``jobs/claims``): members ``FOR UPDATE SKIP LOCKED`` (never waits);
  INSERT call, then attempt (KEY SHARE on lead, campaign, member, call).
- dialer (``jobs/dial``: record_sid, a refused dial): attempt ``FOR UPDATE`` → call →
  record_outcome (member → lead).
- reconciler (``jobs/reconcile``): attempt ``FOR UPDATE`` → call ``FOR UPDATE`` →
  record_outcome.
- progress status (``api/twilio_status_sql``, one statement): ledger INSERT → attempt
  ``FOR UPDATE`` → call UPDATE.
- final status (``api/twilio_status_final``, one statement; the ORM path in
  ``api/twilio_status`` likewise): ledger INSERT → attempt, call, member, lead in one
  ``FOR NO KEY UPDATE`` join (a call found by SID alone: :func:`lock_call_rows`).
- voice and AMD webhooks (``api/twilio``, ``api/twilio_amd``): ledger INSERT → attempt →
  call (``webhook_call``) → record_outcome.
- the call session's end (``call/recorder`` finish): :func:`lock_call_rows` first, then
  UPDATEs of the rows it locked.
- record_outcome (``db/outcomes``): :func:`lock_call_rows` unless this transaction already
  holds the rows, before its first write; a webhook delivery INSERT (KEY SHARE on the
  campaign).

The idempotency ledger (``twilio_events``) is always written first, by token: two
deliveries of one token serialize there, before any row above. Campaign rows are only
read here, or UPDATEd alone (status, lease), which ``KEY SHARE`` does not block.
"""

from __future__ import annotations

from typing import Final

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from voicebot.db.models import Call, CampaignAttempt, CampaignLead, Lead

LOCK_CONFLICT_SQLSTATES: Final = frozenset({"40P01", "40001"})
"""deadlock_detected, serialization_failure: Postgres aborted the transaction; rerun it."""
LOCK_CONFLICT_ATTEMPTS: Final = 3
"""Runs of a webhook's transaction, the first included, before the error goes up."""
LOCK_CONFLICT_WAIT_MAX_S: Final = 0.2
"""Upper bound of the random wait between runs (jittered so the two victims part)."""
LOCK_CONFLICT_WAIT_BASE_S: Final = 0.02
"""Scale of the first wait between runs."""
_LOCKED_KEY: Final = "voicebot.locked_call_ids"

log = structlog.get_logger(__name__)


def is_lock_conflict(exc: BaseException) -> bool:
    """True for a DBAPI error whose SQLSTATE is a deadlock or a serialization failure
    (asyncpg's ``DeadlockDetectedError`` arrives as ``DBAPIError`` with ``.orig.sqlstate``)."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return sqlstate in LOCK_CONFLICT_SQLSTATES


def lock_conflict_retrying() -> AsyncRetrying:
    """A tenacity loop that reruns a whole transaction after a deadlock or serialization
    failure, up to ``LOCK_CONFLICT_ATTEMPTS`` runs, then re-raises the last error. The
    body must open its own session inside the ``with attempt:`` block."""
    return AsyncRetrying(
        retry=retry_if_exception(is_lock_conflict),
        stop=stop_after_attempt(LOCK_CONFLICT_ATTEMPTS),
        wait=wait_random_exponential(
            multiplier=LOCK_CONFLICT_WAIT_BASE_S, max=LOCK_CONFLICT_WAIT_MAX_S
        ),
        before_sleep=_log_rerun,
        reraise=True,
    )


def _log_rerun(state: RetryCallState) -> None:
    """One warning per rerun: a lock cycle means some transaction left the lock order."""
    error = state.outcome.exception() if state.outcome is not None else None
    orig = getattr(error, "orig", None)
    log.warning(
        "db.lock_conflict_rerun",
        run=state.attempt_number,
        sqlstate=getattr(orig, "sqlstate", None),
        error=type(getattr(orig, "__cause__", None) or orig).__name__,
    )


def note_locked(session: AsyncSession, call_id: int) -> None:
    """Record that this transaction holds ``call_id``'s rows in the lock order (so
    :func:`lock_call_rows` issues nothing more for it until the transaction ends)."""
    _held(session).add(call_id)


def _held(session: AsyncSession) -> set[int]:
    """The call ids locked by the session's current transaction (a new set per transaction)."""
    transaction = session.sync_session.get_transaction()
    noted: tuple[object, set[int]] | None = session.info.get(_LOCKED_KEY)
    if noted is None or noted[0] is not transaction:
        noted = (transaction, set())
        session.info[_LOCKED_KEY] = noted
    return noted[1]


async def lock_call_rows(
    session: AsyncSession, call_id: int, *, refresh: bool = False
) -> Call | None:
    """Lock the call's rows in the lock order: its attempt(s), the call, the member(s)
    (the attempts', else the call's campaign member), the lead. Returns the call (None:
    no such call). Nothing is flushed before the locks (pending changes of the caller stay
    pending); ``refresh`` reloads the rows' values (use it before changing them).
    No-op after a first call in the same transaction. Postgres only; SQLite's writer lock
    already serializes, so it loads the call and returns."""
    if call_id in _held(session):
        return await session.get(Call, call_id)
    if session.get_bind().dialect.name != "postgresql":
        return await session.get(Call, call_id, populate_existing=refresh)
    options = {"populate_existing": refresh}
    with session.no_autoflush:
        attempts = (
            await session.scalars(
                select(CampaignAttempt)
                .where(CampaignAttempt.call_id == call_id)
                .order_by(CampaignAttempt.id)
                .with_for_update(key_share=True)
                .execution_options(**options)
            )
        ).all()
        call = (
            await session.scalars(
                select(Call)
                .where(Call.id == call_id)
                .with_for_update(key_share=True)
                .execution_options(**options)
            )
        ).first()
        if call is None:
            return None
        members = sorted({a.member_id for a in attempts})
        member_filter = (
            CampaignLead.id.in_(members)
            if members
            else (CampaignLead.campaign_id == call.campaign_id)
            & (CampaignLead.lead_id == call.lead_id)
        )
        if members or (call.campaign_id is not None and call.lead_id is not None):
            await session.scalars(
                select(CampaignLead)
                .where(member_filter)
                .order_by(CampaignLead.id)
                .with_for_update(key_share=True)
                .execution_options(**options)
            )
        if call.lead_id is not None:
            await session.scalars(
                select(Lead)
                .where(Lead.id == call.lead_id)
                .with_for_update(key_share=True)
                .execution_options(**options)
            )
    note_locked(session, call_id)
    return call
