"""A final status callback (completed, busy, no-answer, failed, canceled) on Postgres as one
statement in autocommit: the idempotency ledger row, the SID noted, the monotonic status
move and, for a call that has no outcome yet, everything ``record_outcome`` settles (the
call's outcome and summary, the attempt ended, the member retried or finished, the lead's
status), in one round trip and one commit.

The rules come from :mod:`voicebot.db.outcomes` as data: the per-outcome table
(:func:`~voicebot.db.outcomes.member_rule`, ``LEAD_STATUS_FOR``, ``LEAD_STATUS_RANK``) is
bound or written into the statement, and the summary is ``rule_summary``'s own text
split around the lead's name. What the statement does not do it leaves to the ORM path
(:mod:`voicebot.api.twilio_status`), and says so before writing anything, the ledger row
included: an end-of-call webhook to record (the report is built from the ORM rows), a
callback without a known attempt (found by SID), rows that do not belong together (a
call, member or campaign of another attempt). tests/integration/api/
test_twilio_status_final.py runs every outcome through both and compares the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final

import structlog
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from voicebot.api.twilio_status_sql import rank_sql, run_once_autocommit
from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.summary import CallFacts, rule_summary
from voicebot.db.models import (
    AttemptStatus,
    CallOutcome,
    CallStatus,
    CampaignStatus,
    MemberState,
)
from voicebot.db.outcomes import (
    IN_FLIGHT,
    LEAD_STATUS_FOR,
    LEAD_STATUS_RANK,
    LIVE_ATTEMPTS,
    member_rule,
)

log = structlog.get_logger(__name__)

RETRY_EXPONENT_MAX: Final = 20
"""``retry_delay``'s cap on the doubling exponent (the delay is capped by minutes too)."""
_NAME_MARK: Final = "\x00"
"""Stands for the lead's name in the summary text; no name or sentence contains it."""


@dataclass(frozen=True, slots=True)
class Settled:
    """What the statement did.

    ``fallback``: not a case for the statement; nothing was written (not even the ledger
    row): run the ORM path. ``duplicate``: the token was already in the ledger. Else
    ``call_id`` is the moved call (None: the rows went away between the statement's check
    and its locks, after the ledger row was written) and ``hung_up`` says a completed call
    has no outcome (a hang-up mid-conversation: the route finishes it).
    """

    fallback: bool
    duplicate: bool
    call_id: int | None = None
    hung_up: bool = False
    campaign_id: int | None = None
    lead_id: int | None = None
    lead_before: str | None = None
    lead_after: str | None = None
    """The lead's new status when it changed, else None."""
    member_state: str | None = None
    """The member's new state when the outcome settled it, else None."""


def _values(values: Any) -> str:
    """A SQL list of enum values (written into the text, never input)."""
    return "(" + ", ".join(f"'{value}'" for value in sorted(values)) + ")"


def build_statement(ranks: dict[CallStatus, int]) -> str:
    """The SQL text, with the status order from ``ranks`` (twilio_status.STATUS_RANK) and
    the lead-status order from ``LEAD_STATUS_RANK``.

    Checks first, without locks (``pre``): the attempt, its call, member, campaign and
    lead exist and belong together, and the campaign records no webhook. Then the ledger
    row (two deliveries of one token serialize there), then the four rows locked in the
    one lock order (voicebot.db.locks: attempt, call, member, lead, as the ORM path's
    join), which returns their newest versions; every decision reads those.
    """
    live = _values(LIVE_ATTEMPTS)
    in_flight = _values(IN_FLIGHT)
    lead_rank = rank_sql("n.l_status", LEAD_STATUS_RANK, default="NULL")
    noted_status = (
        f"CASE WHEN k.c_sid IS NULL AND :sid <> '' AND k.c_status = '{CallStatus.QUEUED}'"
        f" THEN '{CallStatus.INITIATED}' ELSE k.c_status END"
    )
    forward = (
        f"{rank_sql('CAST(:status AS varchar)', ranks)} > {rank_sql('n.c_status_noted', ranks)}"
    )
    by_callback = "CAST(:at_callback AS boolean) AND n.callback_at IS NOT NULL"
    backoff_min = (
        "LEAST(CAST(n.retry_max_min AS bigint), CAST(n.retry_base_min AS bigint)"
        f" * (CAST(1 AS bigint) << LEAST(GREATEST(0, n.m_attempts - 1), {RETRY_EXPONENT_MAX})))"
    )
    joined = """
    FROM campaign_attempts a
    JOIN calls c ON c.id = a.call_id
    JOIN campaign_leads m ON m.id = a.member_id
    JOIN campaigns cp ON cp.id = a.campaign_id
    JOIN leads l ON l.id = a.lead_id
    WHERE a.id = CAST(:attempt_id AS integer)"""
    # S608: the text is built from enum values, integers and constants, never from input.
    return f"""
WITH pre AS (
    SELECT a.id{joined}
      AND c.campaign_id = a.campaign_id AND c.lead_id = a.lead_id
      AND m.campaign_id = a.campaign_id AND m.lead_id = a.lead_id
      AND COALESCE(cp.webhook_url, '') = ''
), ledger AS (
    INSERT INTO twilio_events (token, kind, created_at)
    SELECT CAST(:token AS varchar), 'status', CAST(:now AS timestamptz)
    WHERE CAST(:token AS varchar) IS NOT NULL AND EXISTS (SELECT 1 FROM pre)
    ON CONFLICT (token) DO NOTHING
    RETURNING id
), fresh AS (
    SELECT EXISTS (SELECT 1 FROM pre)
        AND (CAST(:token AS varchar) IS NULL OR EXISTS (SELECT 1 FROM ledger)) AS ok
), locked AS (
    SELECT a.id AS attempt_id, a.campaign_id, a.status AS a_status, a.call_sid AS a_sid,
        c.id AS call_id, c.call_sid AS c_sid, c.status AS c_status, c.outcome AS c_outcome,
        m.id AS member_id, m.state AS m_state, m.attempts AS m_attempts,
        cp.status AS cp_status, cp.max_attempts, cp.retry_base_min, cp.retry_max_min,
        cp.voicemail_retry,
        l.id AS lead_id, l.status AS l_status, l.name AS l_name, l.callback_at{joined}
      AND (SELECT ok FROM fresh)
    FOR NO KEY UPDATE OF a, c, m, l
), noted AS (
    SELECT k.*,
        k.c_sid IS NULL AND :sid <> '' AS sid_new,
        COALESCE(k.c_sid, NULLIF(:sid, '')) AS c_sid_noted,
        COALESCE(k.a_sid, NULLIF(:sid, '')) AS a_sid_noted,
        {noted_status} AS c_status_noted,
        CASE WHEN k.a_status = '{AttemptStatus.DIALING}' AND :sid <> ''
            THEN '{AttemptStatus.PLACED}' ELSE k.a_status END AS a_status_noted,
        k.c_outcome IS NULL AND CAST(:outcome AS varchar) IS NOT NULL AS settles,
        CAST(:retried AS boolean)
            OR (CAST(:retried_if_voicemail_retry AS boolean) AND k.voicemail_retry) AS retry
    FROM locked k
), decided AS (
    SELECT n.*,
        {forward} AS forward,
        n.settles AND n.a_status_noted IN {live} AS attempt_ends,
        n.settles AND n.m_state IN {in_flight} AS member_settles,
        CASE WHEN {by_callback} THEN '{MemberState.RETRY}'
            WHEN n.retry AND n.m_attempts >= n.max_attempts THEN '{MemberState.FAILED}'
            WHEN n.retry THEN '{MemberState.RETRY}'
            ELSE CAST(:otherwise AS varchar) END AS m_state_ruled,
        CASE WHEN {by_callback} THEN n.callback_at
            WHEN n.retry AND n.m_attempts < n.max_attempts
            THEN CAST(:now AS timestamptz) + {backoff_min} * interval '1 minute'
            END AS m_next_ruled,
        CASE WHEN NOT n.settles THEN n.l_status
            WHEN {lead_rank} IS NULL
                OR CAST(:lead_proposed_rank AS integer) >= {lead_rank}
            THEN CAST(:lead_proposed AS varchar)
            ELSE n.l_status END AS l_status_new
    FROM noted n
), attempt_moved AS (
    UPDATE campaign_attempts a SET
        call_sid = CASE WHEN d.attempt_ends
            THEN COALESCE(d.a_sid_noted, d.c_sid_noted) ELSE d.a_sid_noted END,
        status = CASE WHEN d.attempt_ends
            THEN CAST(:attempt_status AS varchar) ELSE d.a_status_noted END,
        placed_at = CASE WHEN d.a_status = '{AttemptStatus.DIALING}' AND :sid <> ''
            THEN CAST(:now AS timestamptz) ELSE a.placed_at END,
        ended_at = CASE WHEN d.attempt_ends THEN CAST(:now AS timestamptz) ELSE a.ended_at END,
        updated_at = CAST(:now AS timestamptz)
    FROM decided d
    WHERE a.id = d.attempt_id AND (d.attempt_ends OR (:sid <> ''
        AND (d.a_sid IS NULL OR d.a_status = '{AttemptStatus.DIALING}')))
    RETURNING a.id
), call_moved AS (
    UPDATE calls c SET
        call_sid = d.c_sid_noted,
        started_at = CASE WHEN d.sid_new
            THEN COALESCE(c.started_at, CAST(:now AS timestamptz)) ELSE c.started_at END,
        status = CASE WHEN d.forward THEN :status ELSE d.c_status_noted END,
        ended_at = CASE WHEN d.forward
            THEN COALESCE(c.ended_at, CAST(:now AS timestamptz)) ELSE c.ended_at END,
        duration_s = CASE WHEN d.forward AND CAST(:duration AS integer) IS NOT NULL
            THEN CAST(:duration AS integer) ELSE c.duration_s END,
        answered_by = COALESCE(CAST(:answered_by AS varchar), c.answered_by),
        status_events = COALESCE(c.status_events, CAST('[]' AS jsonb))
            || jsonb_build_array(CAST(:status AS varchar)),
        summary = CASE WHEN d.settles AND COALESCE(c.summary, '') = ''
            THEN CASE WHEN COALESCE(d.l_name, '') <> ''
                THEN CAST(:summary_before AS text) || d.l_name || CAST(:summary_after AS text)
                ELSE CAST(:summary AS text) END
            ELSE c.summary END,
        outcome = CASE WHEN d.settles THEN CAST(:outcome AS varchar) ELSE c.outcome END,
        updated_at = CAST(:now AS timestamptz)
    FROM decided d
    WHERE c.id = d.call_id
    RETURNING c.id, c.outcome
), member_moved AS (
    UPDATE campaign_leads m SET
        last_outcome = CAST(:outcome AS varchar),
        state = CASE WHEN d.m_state_ruled = '{MemberState.RETRY}'
                AND d.cp_status = '{CampaignStatus.CANCELLED}'
            THEN '{MemberState.SKIPPED}' ELSE d.m_state_ruled END,
        next_attempt_at = COALESCE(d.m_next_ruled, m.next_attempt_at),
        updated_at = CAST(:now AS timestamptz)
    FROM decided d
    WHERE m.id = d.member_id AND d.member_settles
    RETURNING m.state
), lead_moved AS (
    UPDATE leads l SET status = d.l_status_new, updated_at = CAST(:now AS timestamptz)
    FROM decided d
    WHERE l.id = d.lead_id AND d.l_status_new <> d.l_status
    RETURNING l.status
)
SELECT NOT EXISTS (SELECT 1 FROM pre) AS fallback, (SELECT ok FROM fresh) AS fresh,
    (SELECT id FROM call_moved) AS call_id, (SELECT outcome FROM call_moved) AS outcome,
    (SELECT campaign_id FROM decided) AS campaign_id, (SELECT lead_id FROM decided) AS lead_id,
    (SELECT l_status FROM decided) AS lead_before, (SELECT status FROM lead_moved) AS lead_after,
    (SELECT state FROM member_moved) AS member_state
"""  # noqa: S608


def summary_parts(outcome: CallOutcome, tz: tzinfo) -> tuple[str, str, str]:
    """``rule_summary``'s text for a call with ``outcome`` that never talked: without a
    lead name, and the text before and after the name when the lead has one."""
    facts = CallFacts(outcome, tz)
    anonymous = rule_summary(ConversationState(lead=None), facts)
    marked = LeadContext(lead_id=None, name=_NAME_MARK, company=None)
    before, after = rule_summary(ConversationState(lead=marked), facts).split(_NAME_MARK)
    return anonymous, before, after


class FinalStatement:
    """The statement for one status order, built once; :meth:`apply` runs it."""

    def __init__(self, ranks: dict[CallStatus, int]) -> None:
        self.statement: TextClause = text(build_statement(ranks))

    async def apply(
        self,
        engine: AsyncEngine,
        *,
        token: str | None,
        attempt_id: int,
        call_sid: str,
        status: str,
        outcome: CallOutcome | None,
        duration_s: int | None,
        answered_by: str | None,
        tz: tzinfo,
        now: datetime,
    ) -> Settled:
        """Run the statement in autocommit; ``outcome`` is the one a call without one gets
        (None: the status gives none, e.g. completed). A connection lost before the answer
        is retried once on a new connection (the ledger makes the retry a no-op if the
        first one was committed). Raises SQLAlchemy's pool ``TimeoutError`` when no
        connection frees up and ``DBAPIError`` for anything else."""
        params = self.params(
            token=token,
            attempt_id=attempt_id,
            call_sid=call_sid,
            status=status,
            outcome=outcome,
            duration_s=duration_s,
            answered_by=answered_by,
            tz=tz,
            now=now,
        )
        row = await run_once_autocommit(engine, self.statement, params)
        return self.settled(row, token=token, status=status)

    @staticmethod
    def settled(row: Any, *, token: str | None, status: str) -> Settled:
        """:class:`Settled` from the statement's one row."""
        if row.fallback:
            return Settled(fallback=True, duplicate=False)
        if token is not None and not row.fresh:
            return Settled(fallback=False, duplicate=True)
        return Settled(
            fallback=False,
            duplicate=False,
            call_id=row.call_id,
            hung_up=row.call_id is not None
            and row.outcome is None
            and status == CallStatus.COMPLETED,
            campaign_id=row.campaign_id,
            lead_id=row.lead_id,
            lead_before=row.lead_before,
            lead_after=row.lead_after,
            member_state=row.member_state,
        )

    @staticmethod
    def params(
        *,
        token: str | None,
        attempt_id: int,
        call_sid: str,
        status: str,
        outcome: CallOutcome | None,
        duration_s: int | None,
        answered_by: str | None,
        tz: tzinfo,
        now: datetime,
    ) -> dict[str, Any]:
        """The statement's bound parameters for one callback."""
        rule = member_rule(outcome or CallOutcome.COMPLETED)
        proposed = LEAD_STATUS_FOR[outcome or CallOutcome.COMPLETED]
        summary, before, after = summary_parts(outcome or CallOutcome.COMPLETED, tz)
        return {
            "token": token,
            "attempt_id": attempt_id,
            "sid": call_sid,
            "status": status,
            "outcome": outcome.value if outcome is not None else None,
            "duration": duration_s,
            "answered_by": answered_by,
            "now": now,
            "at_callback": rule.at_callback,
            "retried": rule.retried,
            "retried_if_voicemail_retry": rule.retried_if_voicemail_retry,
            "otherwise": rule.otherwise.value,
            "attempt_status": rule.attempt_status.value,
            "lead_proposed": proposed.value,
            "lead_proposed_rank": LEAD_STATUS_RANK[proposed],
            "summary": summary,
            "summary_before": before,
            "summary_after": after,
        }


def log_settled(settled: Settled, outcome: CallOutcome | None) -> None:
    """The info events ``record_outcome`` logs, for what the statement settled."""
    if settled.call_id is None or outcome is None:
        return
    if settled.lead_after is not None:
        log.info(
            "lead.status_changed",
            lead_id=settled.lead_id,
            call_id=settled.call_id,
            old=settled.lead_before,
            new=settled.lead_after,
        )
    if settled.member_state is not None:
        log.info(
            "campaign.member_settled",
            campaign_id=settled.campaign_id,
            lead_id=settled.lead_id,
            outcome=str(outcome),
            state=settled.member_state,
        )
