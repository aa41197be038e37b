"""A progress status callback (queued, initiated, ringing, in-progress) on Postgres as one
statement in autocommit: the idempotency ledger row, the SID noted on the attempt and the
call, and the monotonic status move, in one round trip and one commit.

Final statuses have their own statement (:mod:`voicebot.api.twilio_status_final`); SQLite
has no data-modifying CTEs and stays on the ORM path in :mod:`voicebot.api.twilio_status`.
Both paths give the same rows for the same callbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot.db.models import AttemptStatus, CallStatus

_Value = TypeVar("_Value", bound=str)


async def run_once_autocommit(
    engine: AsyncEngine, statement: TextClause, params: dict[str, Any]
) -> Any:
    """Run one statement that returns one row, in autocommit; answers that row (a SQLAlchemy
    ``Row``). A connection lost before the answer is retried once on a new connection (each
    callback statement writes its ledger row first, so a retry of a committed run is a
    no-op). Raises SQLAlchemy's pool
    ``TimeoutError`` when no connection frees up and ``DBAPIError`` for anything else."""
    for attempt in range(2):
        try:
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                return (await conn.execute(statement, params)).one()
        except DBAPIError as exc:
            if attempt or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable: the second failure is raised")


@dataclass(frozen=True, slots=True)
class Applied:
    """What the statement did: ``duplicate`` when the token was already in the ledger
    (nothing else changed), else ``call_id`` of the moved call (None: no such call)."""

    duplicate: bool
    call_id: int | None


def rank_sql(expression: str, ranks: Mapping[_Value, int], *, default: str = "0") -> str:
    """A SQL CASE giving ``expression``'s rank in ``ranks`` (``default`` for a value not in
    it). The keys are enum values, never input: they are written into the text."""
    whens = " ".join(f"WHEN '{value}' THEN {rank}" for value, rank in ranks.items())
    return f"(CASE {expression} {whens} ELSE {default} END)"


def build_statement(ranks: dict[CallStatus, int]) -> str:
    """The SQL text, with the status order from ``ranks`` (twilio_status.STATUS_RANK).

    Locks in the dialer's order (attempt, then call): the attempt row is locked by the
    ``by_attempt`` scan before the calls UPDATE can see a row to lock. The calls UPDATE
    waits for a concurrent callback's lock and then compares against the row it wrote
    (Postgres re-reads the newest version), so no status is moved backwards. Data-modifying
    CTEs always run to completion: an unknown call still records its ledger row.
    """
    # The status the call has once the SID is noted: a queued call becomes initiated.
    noted = (
        "(CASE WHEN c.call_sid IS NULL AND :sid <> '' AND c.status = :queued"
        " THEN :initiated ELSE c.status END)"
    )
    forward = f"{rank_sql('CAST(:status AS varchar)', ranks)} > {rank_sql(noted, ranks)}"
    # S608: the text is built from the enum's own values and integers, never from input.
    return f"""
WITH ledger AS (
    INSERT INTO twilio_events (token, kind, created_at)
    SELECT CAST(:token AS varchar), 'status', CAST(:now AS timestamptz)
    WHERE CAST(:token AS varchar) IS NOT NULL
    ON CONFLICT (token) DO NOTHING
    RETURNING id
), fresh AS (
    SELECT CAST(:token AS varchar) IS NULL OR EXISTS (SELECT 1 FROM ledger) AS ok
), by_attempt AS (
    SELECT a.id AS attempt_id, a.call_id
    FROM campaign_attempts a JOIN calls k ON k.id = a.call_id
    WHERE a.id = CAST(:attempt_id AS integer) AND (SELECT ok FROM fresh)
    FOR UPDATE OF a
), target AS (
    SELECT attempt_id, call_id FROM by_attempt
    UNION ALL
    SELECT NULL, k.id FROM calls k
    WHERE :sid <> '' AND k.call_sid = :sid AND (SELECT ok FROM fresh)
      AND NOT EXISTS (SELECT 1 FROM by_attempt)
), placed AS (
    UPDATE campaign_attempts a SET
        call_sid = COALESCE(a.call_sid, :sid),
        status = CASE WHEN a.status = :dialing THEN :placed ELSE a.status END,
        placed_at = CASE WHEN a.status = :dialing
            THEN CAST(:now AS timestamptz) ELSE a.placed_at END,
        updated_at = CAST(:now AS timestamptz)
    FROM target t
    WHERE a.id = t.attempt_id AND :sid <> '' AND (a.call_sid IS NULL OR a.status = :dialing)
    RETURNING a.id
), moved AS (
    UPDATE calls c SET
        call_sid = CASE WHEN c.call_sid IS NULL AND :sid <> '' THEN :sid ELSE c.call_sid END,
        started_at = CASE WHEN c.call_sid IS NULL AND :sid <> ''
            THEN COALESCE(c.started_at, CAST(:now AS timestamptz)) ELSE c.started_at END,
        status = CASE WHEN {forward} THEN :status ELSE {noted} END,
        duration_s = CASE WHEN {forward} AND CAST(:duration AS integer) IS NOT NULL
            THEN CAST(:duration AS integer) ELSE c.duration_s END,
        answered_by = COALESCE(CAST(:answered_by AS varchar), c.answered_by),
        status_events = COALESCE(c.status_events, CAST('[]' AS jsonb))
            || jsonb_build_array(CAST(:status AS varchar)),
        updated_at = CAST(:now AS timestamptz)
    FROM target t
    WHERE c.id = t.call_id
    RETURNING c.id
)
SELECT (SELECT ok FROM fresh) AS fresh, (SELECT id FROM moved) AS call_id
"""  # noqa: S608


class ProgressStatement:
    """The statement for one status order, built once; :meth:`apply` runs it."""

    def __init__(self, ranks: dict[CallStatus, int]) -> None:
        self.statement: TextClause = text(build_statement(ranks))

    async def apply(
        self,
        engine: AsyncEngine,
        *,
        token: str | None,
        attempt_id: int | None,
        call_sid: str,
        status: str,
        duration_s: int | None,
        answered_by: str | None,
        now: datetime,
    ) -> Applied:
        """Run the statement in autocommit. A connection lost before the answer is retried
        once on a new connection: the ledger makes the retry a no-op if the first one was
        committed. Raises SQLAlchemy's pool ``TimeoutError`` when no connection frees up
        and ``DBAPIError`` for anything else."""
        params = self.params(
            token=token,
            attempt_id=attempt_id,
            call_sid=call_sid,
            status=status,
            duration_s=duration_s,
            answered_by=answered_by,
            now=now,
        )
        row = await run_once_autocommit(engine, self.statement, params)
        fresh, call_id = row
        if token is not None and not fresh:
            return Applied(duplicate=True, call_id=None)
        return Applied(duplicate=False, call_id=call_id)

    @staticmethod
    def params(
        *,
        token: str | None,
        attempt_id: int | None,
        call_sid: str,
        status: str,
        duration_s: int | None,
        answered_by: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """The statement's bound parameters for one callback."""
        return {
            "token": token,
            "attempt_id": attempt_id,
            "sid": call_sid,
            "status": status,
            "duration": duration_s,
            "answered_by": answered_by,
            "now": now,
            "queued": CallStatus.QUEUED.value,
            "initiated": CallStatus.INITIATED.value,
            "dialing": AttemptStatus.DIALING.value,
            "placed": AttemptStatus.PLACED.value,
        }
