"""Per-campaign metrics, read from the database when ``/metrics`` is scraped.

Dials happen in worker processes and answers in web processes; the database holds both,
so the web process reports the whole picture: dials, answers, outcomes, due members,
live attempts and dead letters of every running or paused campaign.

Failure: a database error leaves the gauges as they were (the scrape still answers).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.db.models import (
    LIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    Call,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
)
from voicebot.db.types import utcnow
from voicebot.jobs.claims import DUE_STATES
from voicebot.metrics import Metrics

log = structlog.get_logger(__name__)
SENT = (AttemptStatus.PLACED, AttemptStatus.ENDED, AttemptStatus.FAILED, AttemptStatus.DIALING)
NUDGE_ACTOR = "nudge_campaign"
DEAD_LETTERS_TIMEOUT_S = 2.0


async def refresh_campaign_metrics(
    sessions: async_sessionmaker[AsyncSession], metrics: Metrics, dead_letters: Any = None
) -> None:
    """Set the campaign gauges from the database (and the broker's dead-letter store)."""
    try:
        async with sessions() as session:
            ids = list(
                (
                    await session.scalars(
                        select(Campaign.id).where(
                            Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED))
                        )
                    )
                ).all()
            )
            if not ids:
                return
            dials = await _grouped(
                session,
                select(CampaignAttempt.campaign_id, func.count())
                .where(CampaignAttempt.campaign_id.in_(ids), CampaignAttempt.status.in_(SENT))
                .group_by(CampaignAttempt.campaign_id),
            )
            live = await _grouped(
                session,
                select(CampaignAttempt.campaign_id, func.count())
                .where(
                    CampaignAttempt.campaign_id.in_(ids),
                    CampaignAttempt.status.in_(LIVE_ATTEMPT_STATUSES),
                )
                .group_by(CampaignAttempt.campaign_id),
            )
            answers = await _grouped(
                session,
                select(Call.campaign_id, func.count())
                .where(Call.campaign_id.in_(ids), Call.answered_at.is_not(None))
                .group_by(Call.campaign_id),
            )
            due = await _grouped(
                session,
                select(CampaignLead.campaign_id, func.count())
                .where(
                    CampaignLead.campaign_id.in_(ids),
                    CampaignLead.state.in_(DUE_STATES),
                    or_(
                        CampaignLead.next_attempt_at.is_(None),
                        CampaignLead.next_attempt_at <= utcnow(),
                    ),
                )
                .group_by(CampaignLead.campaign_id),
            )
            outcomes = (
                await session.execute(
                    select(Call.campaign_id, Call.outcome, func.count())
                    .where(Call.campaign_id.in_(ids), Call.outcome.is_not(None))
                    .group_by(Call.campaign_id, Call.outcome)
                )
            ).all()
    except SQLAlchemyError as exc:
        log.warning("metrics.campaigns_unavailable", error=type(exc).__name__)
        return
    try:
        letters = await asyncio.wait_for(
            asyncio.to_thread(_dead_letters_by_campaign, dead_letters), DEAD_LETTERS_TIMEOUT_S
        )
    except TimeoutError:
        letters = {}
    for cid in ids:
        label = str(cid)
        metrics.campaign_dials.labels(label).set(dials.get(cid, 0))
        metrics.campaign_in_flight.labels(label).set(live.get(cid, 0))
        metrics.campaign_answers.labels(label).set(answers.get(cid, 0))
        metrics.campaign_due.labels(label).set(due.get(cid, 0))
        metrics.campaign_dead_letters.labels(label).set(letters.get(cid, 0))
    for of_campaign, outcome, count in outcomes:
        metrics.campaign_outcomes.labels(str(of_campaign), str(outcome)).set(int(count))


async def _grouped(session: AsyncSession, stmt: Any) -> dict[int, int]:
    return {int(k): int(n) for k, n in (await session.execute(stmt)).all()}


def _dead_letters_by_campaign(store: Any) -> dict[int, int]:
    """Dead-lettered nudges per campaign id (their first argument); {} without a store."""
    if store is None:
        return {}
    counts: dict[int, int] = {}
    try:
        letters = store.newest(1000)
    except Exception as exc:
        log.warning("metrics.dead_letters_unavailable", error=type(exc).__name__)
        return {}
    for letter in letters:
        if getattr(letter, "actor", None) == NUDGE_ACTOR and letter.args:
            first = letter.args[0]
            if isinstance(first, int):
                counts[first] = counts.get(first, 0) + 1
    return counts
