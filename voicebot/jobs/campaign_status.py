"""A campaign's progress read straight from the database (no web process needed).

:func:`campaign_snapshot` answers what an operator asks while a campaign runs: its
status and pause reason, how many members are in each state, the outcomes reached so
far, how many are due now and how many calls are in flight (live attempts, as the
``GET /campaigns/{id}/stats`` route counts them), and whether the calling
window is open (and if not, why and when it opens). Used by
``voicebot campaign status ID [--watch]``; read-only, one short transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import (
    LIVE_ATTEMPT_STATUSES,
    AttemptStatus,
    Campaign,
    CampaignAttempt,
    CampaignLead,
    CampaignStatus,
    MemberState,
)
from voicebot.errors import NotFoundError
from voicebot.scheduling import CallingWindow, WindowFieldError

FINAL_STATES = (MemberState.DONE, MemberState.FAILED, MemberState.SKIPPED)
WAITING_STATES = (MemberState.PENDING, MemberState.RETRY)
ENDED_STATUSES = (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class CampaignSnapshot:
    """One reading of a campaign's progress at ``at`` (UTC)."""

    campaign_id: int
    name: str
    status: str
    status_reason: str | None
    at: datetime
    states: dict[str, int]  # every MemberState, zeros included
    outcomes: dict[str, int]  # members' last outcome → count (members with one only)
    due: int  # waiting members whose next attempt time has come
    attempts: dict[str, int]  # attempts per status (every AttemptStatus, zeros included)
    window_open: bool | None  # None when the stored window cannot be read
    window_note: str  # "open until 19:00", "closed (Shabbat), opens Sun 09:00"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def final(self) -> int:
        return sum(self.states.get(s, 0) for s in FINAL_STATES)

    @property
    def in_flight(self) -> int:
        """Live attempts (claimed, dialing or placed): the campaign stats' definition."""
        return sum(self.attempts.get(s, 0) for s in LIVE_ATTEMPT_STATUSES)

    @property
    def attempts_total(self) -> int:
        return sum(self.attempts.values())

    @property
    def ended(self) -> bool:
        """True once the campaign can make no more progress (completed or cancelled)."""
        return self.status in ENDED_STATUSES

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "name": self.name,
            "status": self.status,
            "status_reason": self.status_reason,
            "at": self.at.isoformat(),
            "total": self.total,
            "final": self.final,
            "states": self.states,
            "outcomes": self.outcomes,
            "due": self.due,
            "in_flight": self.in_flight,
            "attempts": self.attempts,
            "window_open": self.window_open,
            "window": self.window_note,
        }


async def campaign_snapshot(
    session: AsyncSession, campaign_id: int, *, now: datetime
) -> CampaignSnapshot:
    """Read campaign ``campaign_id`` at ``now`` (aware). Raises NotFoundError."""
    found = await campaign_snapshots(session, [campaign_id], now=now)
    if not found:
        raise NotFoundError(f"campaign {campaign_id} not found")
    return found[0]


async def campaign_snapshots(
    session: AsyncSession, campaign_ids: Sequence[int], *, now: datetime
) -> list[CampaignSnapshot]:
    """Read several campaigns at ``now`` in three queries (not four per campaign),
    in the order of ``campaign_ids``; ids with no campaign are left out."""
    ids = list(dict.fromkeys(campaign_ids))
    if not ids:
        return []
    campaigns = {
        c.id: c for c in (await session.scalars(select(Campaign).where(Campaign.id.in_(ids))))
    }
    states: dict[int, dict[str, int]] = {cid: {s.value: 0 for s in MemberState} for cid in ids}
    outcomes: dict[int, dict[str, int]] = {cid: {} for cid in ids}
    due: dict[int, int] = dict.fromkeys(ids, 0)
    is_due = and_(
        CampaignLead.state.in_(WAITING_STATES),
        or_(CampaignLead.next_attempt_at.is_(None), CampaignLead.next_attempt_at <= now),
    )
    # One pass over the members: per state and outcome, with how many are due.
    member_rows = await session.execute(
        select(
            CampaignLead.campaign_id,
            CampaignLead.state,
            CampaignLead.last_outcome,
            func.count(),
            func.sum(case((is_due, 1), else_=0)),
        )
        .where(CampaignLead.campaign_id.in_(ids))
        .group_by(CampaignLead.campaign_id, CampaignLead.state, CampaignLead.last_outcome)
    )
    for cid, state, outcome, count, due_count in member_rows.all():
        states[cid][str(state)] = states[cid].get(str(state), 0) + int(count)
        if outcome is not None:
            outcomes[cid][str(outcome)] = outcomes[cid].get(str(outcome), 0) + int(count)
        due[cid] += int(due_count or 0)
    attempts: dict[int, dict[str, int]] = {cid: {s.value: 0 for s in AttemptStatus} for cid in ids}
    attempt_rows = await session.execute(
        select(CampaignAttempt.campaign_id, CampaignAttempt.status, func.count())
        .where(CampaignAttempt.campaign_id.in_(ids))
        .group_by(CampaignAttempt.campaign_id, CampaignAttempt.status)
    )
    for cid, status, count in attempt_rows.all():
        attempts[cid][str(status)] = int(count)
    snapshots = []
    for cid in ids:
        campaign = campaigns.get(cid)
        if campaign is None:
            continue
        window_open, window_note = _window(campaign, now)
        snapshots.append(
            CampaignSnapshot(
                campaign_id=campaign.id,
                name=campaign.name,
                status=campaign.status,
                status_reason=campaign.status_reason,
                at=now,
                states=states[cid],
                outcomes=dict(sorted(outcomes[cid].items(), key=lambda kv: (-kv[1], kv[0]))),
                due=due[cid],
                attempts=attempts[cid],
                window_open=window_open,
                window_note=window_note,
            )
        )
    return snapshots


def _window(campaign: Campaign, now: datetime) -> tuple[bool | None, str]:
    """Is the campaign's window open now in its own zone, and a note saying until/when."""
    try:
        window = CallingWindow.from_fields(
            window_days=campaign.window_days,
            window_start=campaign.window_start,
            window_end=campaign.window_end,
            calendar=campaign.calendar,
            blocked_dates=campaign.blocked_dates,
        )
        tz = ZoneInfo(campaign.timezone)
    except (WindowFieldError, ValueError, KeyError) as exc:
        return None, f"unreadable window: {exc}"
    closes = window.closes_at(now, tz)
    if closes is not None:
        return True, f"open until {closes:%a %H:%M} ({tz.key})"
    reason = window.closed_reason(now, tz) or "closed"
    opens = window.next_open(now, tz)
    when = f"opens {opens:%a %Y-%m-%d %H:%M} ({tz.key})" if opens else "never opens"
    return False, f"closed ({reason}), {when}"
