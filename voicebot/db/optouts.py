"""Opt-outs that are never lost: the do-not-call write, its fallback and its drain.

A caller who asks to be removed is a legal obligation. :func:`durable_opt_out` writes
the opt-out (the :class:`~voicebot.db.models.DoNotCall` row, the lead's status and the
``lead.opted_out`` webhook event, in one transaction), retrying for at most
``OPTOUT_WRITE_BUDGET_S`` so the caller is not kept waiting; if the database still
fails, the opt-out goes to the :class:`~voicebot.store.optout_outbox.OptOutOutbox`
(logged once, ``optout.deferred``) and the call goes on to its removal goodbye. Every
sweeper pass calls :func:`drain_outbox` before it claims anyone: each entry is written
(idempotently: the number's unique row decides, and the webhook event is emitted only
with the row that was created) and only then removed; an entry the database still
refuses stays for the next pass, and nobody is dialed while the outbox cannot be read.

The cases left: the database and the outbox both fail (Postgres and Redis down
together, or the in-process outbox full), or a process-local outbox (no Redis) still
holds entries when its process stops (:func:`close_outbox` tries one last drain). The
opt-out is then logged at ERROR (``optout.lost``, with the lead id and the call SID) for
an operator to enter by hand; the caller still hears the removal goodbye.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from voicebot.db.models import DoNotCall, Lead, LeadStatus
from voicebot.errors import OutboxUnavailableError
from voicebot.store.optout_outbox import LOCAL_OUTBOX_MAX_ENTRIES, OptOut, OptOutOutbox
from voicebot.webhooks.events import emit_opted_out

if TYPE_CHECKING:
    from voicebot.config import Settings

log = structlog.get_logger(__name__)

OPTOUT_WRITE_BUDGET_S = 1.0
"""All tries of the database write together; past it the opt-out goes to the outbox."""
OPTOUT_RETRY_FIRST_WAIT_S = 0.1
"""The wait before the second try; it doubles, up to ``OPTOUT_RETRY_MAX_WAIT_S``."""
OPTOUT_RETRY_MAX_WAIT_S = 0.4
DRAIN_BATCH_ENTRIES = 100
"""Entries read from the outbox at a time."""
DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
"""A database that failed or stalled (a constraint violation is handled inside)."""
REFUSED_SQLSTATE_CLASSES = ("22", "23")
"""SQLSTATE classes of a statement refused for its data (data exception, integrity
constraint violation), not for an outage; asyncpg's errors carry the code."""
OPTOUT_REASON = "asked on call"
LAST_DRAIN_BUDGET_S = 5.0
"""A process-local outbox's last drain as the process stops (shutdown must not hang)."""


async def record_opt_out(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, entry: OptOut
) -> bool:
    """Put ``entry``'s number on do-not-call and mark its lead, in one transaction; the
    ``lead.opted_out`` event goes with the row. True when this call created the row; False
    when it was there already (or no number is known). Raises on a database failure."""
    async with sessions() as session:
        lead = None if entry.lead_id is None else await session.get(Lead, entry.lead_id)
        phone = entry.phone or (lead.phone if lead is not None else None)
        if phone is None:
            return False
        if lead is not None:
            lead.status = LeadStatus.DO_NOT_CALL
        exists = (await session.scalars(select(DoNotCall).where(DoNotCall.phone == phone))).first()
        created = exists is None
        if created:
            session.add(DoNotCall(phone=phone, reason=OPTOUT_REASON, source=entry.source))
            await emit_opted_out(session, settings, phone, lead, source=entry.source)
        try:
            await session.commit()
        except IntegrityError:
            # Another writer put the number on the list between our read and commit.
            await session.rollback()
            return False
    return created


async def durable_opt_out(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    entry: OptOut,
    *,
    outbox: OptOutOutbox | None,
) -> None:
    """Record ``entry`` now, or keep it in ``outbox`` for the sweeper (see the module
    docstring). Returns within about ``OPTOUT_WRITE_BUDGET_S`` plus one outbox command.
    Without an outbox the database error is raised, as any tool's."""
    bound = log.bind(lead_id=entry.lead_id, call_sid=entry.call_sid, source=entry.source)
    try:
        async with asyncio.timeout(OPTOUT_WRITE_BUDGET_S):
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(DB_ERRORS),
                wait=wait_exponential(
                    multiplier=OPTOUT_RETRY_FIRST_WAIT_S, max=OPTOUT_RETRY_MAX_WAIT_S
                ),
                reraise=True,
            ):
                with attempt:
                    await record_opt_out(sessions, settings, entry)
        return
    except DB_ERRORS as exc:
        if outbox is None:
            raise
        error = type(exc).__name__
    try:
        await outbox.put(entry)
    except OutboxUnavailableError as exc:
        bound.error("optout.lost", db_error=error, outbox_error=exc.message)
        return
    bound.warning("optout.deferred", error=error, shared=outbox.shared)


def refused_for_good(exc: DBAPIError) -> bool:
    """True when the database refused the statement for its data (a value it cannot
    store, a constraint other than the do-not-call row already being there): retrying
    cannot help. Connection failures, timeouts and the like are False."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in REFUSED_SQLSTATE_CLASSES


async def drain_outbox(
    outbox: OptOutOutbox, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    """Write every entry of ``outbox`` to the database, removing each once written; how
    many were drained. Raises (leaving the rest in place) when the database or the outbox
    fails: the caller must not dial until a drain succeeds. An entry the database refuses
    for good (:func:`refused_for_good`) is dead-lettered and logged at ERROR
    (``optout.dead_letter``) instead, so it cannot stop the drain."""
    drained = 0
    done: set[str] = set()
    while True:
        raws = await outbox.peek(DRAIN_BATCH_ENTRIES)
        if not raws:
            return drained
        if done.issuperset(raws):  # written, yet still there: never loop on them
            raise OutboxUnavailableError("opt-out outbox entries were not removed")
        done.update(raws)
        for raw in raws:
            try:
                entry = OptOut.from_json(raw)
            except (ValueError, KeyError, TypeError):
                log.error("optout.outbox_bad_entry", entry=raw[:200])
                await outbox.remove(raw)
                continue
            try:
                created = await record_opt_out(sessions, settings, entry)
            except DBAPIError as exc:
                if not refused_for_good(exc):
                    raise
                # Not an outage: retrying would block every later entry and all dialing.
                await outbox.dead_letter(raw)
                log.error(
                    "optout.dead_letter",
                    lead_id=entry.lead_id,
                    call_sid=entry.call_sid,
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                )
                continue
            await outbox.remove(raw)
            drained += 1
            log.info(
                "optout.drained",
                lead_id=entry.lead_id,
                call_sid=entry.call_sid,
                created=created,
            )


async def run_outbox_drain(
    outbox: OptOutOutbox,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    stop: asyncio.Event,
) -> None:
    """Drain ``outbox`` every ``CAMPAIGN_SWEEP_INTERVAL_S`` until ``stop``: for a process
    that takes calls but runs no sweeper. A failing drain is tried again each period and
    logged once per outage (``optout.drain_failed``, then ``optout.drain_recovered``)."""
    failing = False
    while not stop.is_set():
        try:
            await drain_outbox(outbox, sessions, settings)
        except (*DB_ERRORS, OutboxUnavailableError) as exc:
            if not failing:
                log.warning("optout.drain_failed", error=f"{type(exc).__name__}: {exc}")
            failing = True
        else:
            if failing:
                log.info("optout.drain_recovered")
            failing = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settings.campaign_sweep_interval_s):
                await stop.wait()


async def close_outbox(
    outbox: OptOutOutbox, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    """As the process stops: a process-local outbox dies with it, so it is drained one last
    time (within ``LAST_DRAIN_BUDGET_S``) and every entry still in it is logged at ERROR
    (``optout.lost``, reason ``process_exit``, with the lead id, call SID and masked number)
    for an operator to enter by hand; how many were lost. A shared outbox (Redis) is left
    for the next process."""
    if outbox.shared:
        return 0
    error = None
    try:
        async with asyncio.timeout(LAST_DRAIN_BUDGET_S):
            await drain_outbox(outbox, sessions, settings)
    except (*DB_ERRORS, OutboxUnavailableError) as exc:
        error = type(exc).__name__
    left = await outbox.peek(LOCAL_OUTBOX_MAX_ENTRIES)
    for raw in left:
        try:
            entry = OptOut.from_json(raw)
        except (ValueError, KeyError, TypeError):
            log.error("optout.lost", reason="process_exit", entry=raw[:200], db_error=error)
            continue
        log.error(
            "optout.lost",
            reason="process_exit",
            lead_id=entry.lead_id,
            call_sid=entry.call_sid,
            phone=entry.phone,
            requested_at=entry.requested_at.isoformat(),
            db_error=error,
        )
    return len(left)
