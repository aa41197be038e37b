"""A campaign's progress read straight from the database (no web process needed).

:func:`campaign_snapshot` answers what an operator asks while a campaign runs: its
status and pause reason, how many members are in each state, the outcomes reached so
far, how many are due now and how many calls are in flight (live attempts, as the
``GET /campaigns/{id}/stats`` route counts them), and whether the calling
window is open (and if not, why and when it opens). Used by
``voicebot campaign status ID [--watch]``; read-only, one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
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
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"campaign {campaign_id} not found")
    members = CampaignLead.campaign_id == campaign_id
    state_rows = await session.execute(
        select(CampaignLead.state, func.count()).where(members).group_by(CampaignLead.state)
    )
    states = {state.value: 0 for state in MemberState}
    states.update({str(state): int(count) for state, count in state_rows.all()})
    outcome_rows = await session.execute(
        select(CampaignLead.last_outcome, func.count())
        .where(members, CampaignLead.last_outcome.is_not(None))
        .group_by(CampaignLead.last_outcome)
    )
    outcomes = {str(outcome): int(count) for outcome, count in outcome_rows.all()}
    due_now = await session.scalar(
        select(func.count())
        .select_from(CampaignLead)
        .where(
            members,
            CampaignLead.state.in_(WAITING_STATES),
            or_(CampaignLead.next_attempt_at.is_(None), CampaignLead.next_attempt_at <= now),
        )
    )
    attempt_rows = await session.execute(
        select(CampaignAttempt.status, func.count())
        .where(CampaignAttempt.campaign_id == campaign_id)
        .group_by(CampaignAttempt.status)
    )
    attempts = {status.value: 0 for status in AttemptStatus}
    attempts.update({str(status): int(count) for status, count in attempt_rows.all()})
    window_open, window_note = _window(campaign, now)
    return CampaignSnapshot(
        campaign_id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        status_reason=campaign.status_reason,
        at=now,
        states=states,
        outcomes=dict(sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
        due=int(due_now or 0),
        attempts=attempts,
        window_open=window_open,
        window_note=window_note,
    )


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
