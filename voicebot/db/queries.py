"""Read queries shared by the REST API and the operations console.

Owns the filtered selects over calls, leads and meetings and the aggregate counts the
console's overview shows, so that ``/api/v1/...`` and ``/ui/...`` answer from the same
statements. Each function takes an open session and returns ORM rows or plain values;
none commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from voicebot.db.models import (
    Call,
    CallStatus,
    CallTurn,
    Campaign,
    CampaignLead,
    Lead,
    Meeting,
    MeetingStatus,
)

LIVE_CALL_STATUSES = (
    CallStatus.QUEUED,
    CallStatus.INITIATED,
    CallStatus.RINGING,
    CallStatus.IN_PROGRESS,
)
"""A call in one of these has not ended (the status callbacks say so)."""
MAX_LIVE_CALLS_LISTED = 100
MIN_PHONE_SEARCH_DIGITS = 3
"""A search of this many digits (and no letters) looks in phone numbers, not names."""
MAX_LATENCY_TURNS = 5_000
"""Turns the overview's latency percentiles are computed over (the newest ones)."""
LATENCY_STAGE_KEYS = {
    "endpoint": (("endpoint",),),
    "stt": (("stt",),),
    "llm": (("llm_first_token", "brain"),),
    "tts": (("tts_first_byte",), ("first_frame",)),
}
"""Each stage an operator reads, as a sum of terms; each term is the first of its keys
that holds a number (a missing or non-numeric value counts 0, a negative one 0)."""


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What a calls list is narrowed to; None means any."""

    lead_id: int | None = None
    campaign_id: int | None = None
    status: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def calls_select(f: CallFilter) -> Select[Call]:
    """Calls matching ``f``, newest first (by id, which the primary key index serves)."""
    stmt = select(Call).order_by(Call.id.desc())
    if f.lead_id is not None:
        stmt = stmt.where(Call.lead_id == f.lead_id)
    if f.campaign_id is not None:
        stmt = stmt.where(Call.campaign_id == f.campaign_id)
    if f.status:
        stmt = stmt.where(Call.status == f.status)
    if f.outcome:
        stmt = stmt.where(Call.outcome == f.outcome)
    if f.since is not None:
        stmt = stmt.where(Call.created_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(Call.created_at < f.until)
    return stmt


async def list_calls(
    session: AsyncSession, f: CallFilter, *, limit: int, offset: int = 0
) -> list[Call]:
    return list((await session.scalars(calls_select(f).limit(limit).offset(offset))).all())


async def call_with_turns(session: AsyncSession, call_id: int) -> Call | None:
    stmt = select(Call).where(Call.id == call_id).options(selectinload(Call.turns))
    return (await session.scalars(stmt)).first()


async def live_calls(session: AsyncSession) -> list[Call]:
    """Calls not ended yet, newest first (at most ``MAX_LIVE_CALLS_LISTED``)."""
    stmt = (
        select(Call)
        .where(Call.status.in_(LIVE_CALL_STATUSES), Call.ended_at.is_(None))
        .order_by(Call.id.desc())
        .limit(MAX_LIVE_CALLS_LISTED)
    )
    return list((await session.scalars(stmt)).all())


async def count_live_calls(session: AsyncSession) -> int:
    stmt = select(func.count(Call.id)).where(
        Call.status.in_(LIVE_CALL_STATUSES), Call.ended_at.is_(None)
    )
    return int(await session.scalar(stmt) or 0)


async def outcomes_since(session: AsyncSession, since: datetime) -> dict[str, int]:
    """Calls created since ``since`` per outcome (``""`` for calls without one yet)."""
    stmt = (
        select(Call.outcome, func.count(Call.id))
        .where(Call.created_at >= since)
        .group_by(Call.outcome)
    )
    return {str(o or ""): int(n) for o, n in (await session.execute(stmt)).all()}


async def turn_latencies_since(session: AsyncSession, since: datetime) -> list[dict[str, Any]]:
    """The latency breakdowns of agent turns stored since ``since`` (newest first, bounded)."""
    stmt = (
        select(CallTurn.latency)
        .where(CallTurn.created_at >= since, CallTurn.role == "assistant")
        .order_by(CallTurn.id.desc())
        .limit(MAX_LATENCY_TURNS)
    )
    return [dict(row or {}) for row in (await session.scalars(stmt)).all()]


def _stage_sql(terms: tuple[tuple[str, ...], ...]) -> str:
    def number(key: str) -> str:
        # Keys are the fixed names above, never input.
        return (
            f"CASE WHEN jsonb_typeof(latency->'{key}') = 'number' "
            f"THEN greatest(trunc((latency->>'{key}')::float), 0) END"
        )

    return " + ".join(f"coalesce({', '.join(number(k) for k in keys)}, 0)" for keys in terms)


_STAGES_SQL = {stage: _stage_sql(terms) for stage, terms in LATENCY_STAGE_KEYS.items()}
_TOTAL_SQL = (
    "coalesce(nullif(CASE WHEN jsonb_typeof(latency->'total') = 'number' "
    "THEN (latency->>'total')::float END, 0), "
    + " + ".join(f"({sql})" for sql in _STAGES_SQL.values())
    + ")"
)
_PERCENTILES_SQL = text(
    "SELECT count(*) AS turns, "  # noqa: S608 - built from the fixed stage keys above
    + ", ".join(
        f"percentile_cont(CAST(:fractions AS float[])) WITHIN GROUP (ORDER BY {sql}) AS {name}"
        for name, sql in (*_STAGES_SQL.items(), ("total", _TOTAL_SQL))
    )
    + " FROM (SELECT latency FROM call_turns WHERE created_at >= :since AND role = 'assistant'"
    " ORDER BY id DESC LIMIT :turns) AS recent"  # the newest turns, as the Python path reads
)


async def turn_latency_percentiles(
    session: AsyncSession, since: datetime, percentiles: Sequence[int]
) -> tuple[int, dict[str, dict[int, float]]] | None:
    """How many agent turns were stored since ``since`` (at most ``MAX_LATENCY_TURNS``,
    the newest) and the ``percentiles`` of each stage and of the total in ms, computed by
    Postgres (``percentile_cont``, numpy's linear interpolation). None on another database
    (the caller computes them from :func:`turn_latencies_since`)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    fractions = [p / 100 for p in percentiles]
    row = (
        await session.execute(
            _PERCENTILES_SQL, {"fractions": fractions, "since": since, "turns": MAX_LATENCY_TURNS}
        )
    ).one()
    turns = int(row.turns)
    if not turns:
        return 0, {}
    table = {
        name: dict(zip(percentiles, getattr(row, name), strict=True))
        for name in (*_STAGES_SQL, "total")
    }
    return turns, table


def leads_select(
    *, status: str | None = None, search: str | None = None, company: str | None = None
) -> Select[Lead]:
    """Leads by status, company and a name or phone search, in id order."""
    stmt = select(Lead)
    if status:
        stmt = stmt.where(Lead.status == status)
    if company:
        stmt = stmt.where(Lead.company == company)
    if search:
        digits = "".join(ch for ch in search if ch.isdigit())
        if len(digits) >= MIN_PHONE_SEARCH_DIGITS and not any(ch.isalpha() for ch in search):
            stmt = stmt.where(Lead.phone.contains(digits.lstrip("0")))
        else:
            stmt = stmt.where(Lead.name.ilike(f"%{search}%"))
    return stmt.order_by(Lead.id)


async def meetings_between(
    session: AsyncSession,
    start: datetime | None,
    end: datetime | None,
    *,
    status: str | None = None,
    lead_id: int | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Meeting]:
    """Meetings overlapping ``[start, end)`` by start time."""
    stmt = select(Meeting).order_by(Meeting.start_at)
    if start is not None:
        stmt = stmt.where(Meeting.end_at > start)
    if end is not None:
        stmt = stmt.where(Meeting.start_at < end)
    if status:
        stmt = stmt.where(Meeting.status == status)
    if lead_id is not None:
        stmt = stmt.where(Meeting.lead_id == lead_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list((await session.scalars(stmt.offset(offset))).all())


async def count_meetings(session: AsyncSession, start: datetime, end: datetime) -> int:
    stmt = select(func.count(Meeting.id)).where(
        Meeting.status != MeetingStatus.CANCELLED, Meeting.start_at >= start, Meeting.start_at < end
    )
    return int(await session.scalar(stmt) or 0)


async def leads_by_id(session: AsyncSession, ids: Sequence[int | None]) -> dict[int, Lead]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = (await session.scalars(select(Lead).where(Lead.id.in_(wanted)))).all()
    return {lead.id: lead for lead in rows}


async def campaign_names(session: AsyncSession) -> dict[int, str]:
    rows = (await session.execute(select(Campaign.id, Campaign.name).order_by(Campaign.id))).all()
    return {int(i): str(n) for i, n in rows}


async def lead_memberships(session: AsyncSession, lead_id: int) -> list[tuple[CampaignLead, str]]:
    """The lead's campaign memberships with each campaign's name."""
    stmt = (
        select(CampaignLead, Campaign.name)
        .join(Campaign, Campaign.id == CampaignLead.campaign_id)
        .where(CampaignLead.lead_id == lead_id)
        .order_by(CampaignLead.id)
    )
    return [(m, str(n)) for m, n in (await session.execute(stmt)).all()]


async def meetings_for_call(session: AsyncSession, call_id: int) -> list[Meeting]:
    stmt = select(Meeting).where(Meeting.call_id == call_id).order_by(Meeting.start_at)
    return list((await session.scalars(stmt)).all())
