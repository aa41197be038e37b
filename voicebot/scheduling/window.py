"""The calling window: may a lead be dialed at this instant, and if not, from when?

A :class:`CallingWindow` combines two layers, and a moment is open only when both are
(the intersection):

1. the **calendar** (``"IL"`` or ``"none"``, see :mod:`voicebot.scheduling.calendars`):
   which dates are closed (Shabbat, holidays) and the widest hours of the rest;
2. the **campaign's own window**: ``window_days``, ``window_start``–``window_end``,
   and ``blocked_dates`` (whole local dates closed).

So a campaign with ``window_end: "19:00"`` under IL stops at 13:00 on Friday, and one
with ``window_days: "sun,…,sat"`` still never calls on Shabbat. Every rule is read on
the lead's local clock (``tz``, from :func:`~voicebot.scheduling.lead_timezone`):
Shabbat and the holidays are those of the lead's own date. Intervals are half-open
``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from voicebot.scheduling.calendars import CalendarName, closed_reason, day_hours
from voicebot.scheduling.validation import (
    parse_blocked_dates,
    parse_calendar,
    parse_window_days,
    parse_window_times,
)

# How far ahead next_open looks before answering "never" (a campaign whose days are all
# blocked): past a year of blocked dates plus the longest holiday run.
NEXT_OPEN_HORIZON_DAYS: Final = 400

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class CallingWindow:
    """When a campaign may dial: calendar ∩ its days, clock hours and blocked dates.

    ``days`` are Python weekday numbers (Monday=0); ``start``/``end`` local clock,
    ``end`` after ``start``. Build it from stored campaign fields with
    :meth:`from_fields`, which validates them.
    """

    days: frozenset[int]
    start: time
    end: time
    calendar: CalendarName = "IL"
    blocked_dates: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def from_fields(
        cls,
        *,
        window_days: str | Iterable[str],
        window_start: str | time,
        window_end: str | time,
        calendar: str = "IL",
        blocked_dates: str | Iterable[str | date] | None = None,
    ) -> CallingWindow:
        """Parse campaign fields as stored or sent; raises ``WindowFieldError`` (a ValueError)."""
        start, end = parse_window_times(window_start, window_end)
        return cls(
            days=parse_window_days(window_days),
            start=start,
            end=end,
            calendar=parse_calendar(calendar),
            blocked_dates=parse_blocked_dates(blocked_dates),
        )

    def interval_on(self, day: date, tz: ZoneInfo) -> Interval | None:
        """The open span of local date ``day`` in ``tz`` (aware datetimes), or None."""
        if day in self.blocked_dates or day.weekday() not in self.days:
            return None
        allowed = day_hours(self.calendar, day)
        if allowed is None:
            return None
        start = datetime.combine(day, max(self.start, allowed.start), tzinfo=tz)
        end = datetime.combine(day, self.end, tzinfo=tz)
        if allowed.end is not None:
            end = min(end, datetime.combine(day, allowed.end, tzinfo=tz))
        return (start, end) if start < end else None

    def is_open(self, at: datetime, tz: ZoneInfo) -> bool:
        """True when a lead whose clock is ``tz`` may be dialed at ``at`` (aware)."""
        local = _local(at, tz)
        span = self.interval_on(local.date(), tz)
        return span is not None and span[0] <= local < span[1]

    def closes_at(self, at: datetime, tz: ZoneInfo) -> datetime | None:
        """End of the open span containing ``at``, or None when ``at`` is outside the window."""
        local = _local(at, tz)
        span = self.interval_on(local.date(), tz)
        if span is None or not span[0] <= local < span[1]:
            return None
        return span[1]

    def next_open(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first instant at or after ``after`` when the window is open, in ``tz``.

        ``after`` itself when open now; None when nothing opens within
        :data:`NEXT_OPEN_HORIZON_DAYS` (every day blocked or excluded).
        """
        local = _local(after, tz)
        for offset in range(NEXT_OPEN_HORIZON_DAYS):
            span = self.interval_on(local.date() + timedelta(days=offset), tz)
            if span is None or span[1] <= local:
                continue
            return max(span[0], local)
        return None

    def next_open_in_all(self, after: datetime, zones: Sequence[ZoneInfo]) -> datetime | None:
        """The first instant at or after ``after`` when the window is open on every clock of
        ``zones`` at once (a number whose zone is uncertain); None when no such instant
        comes within :data:`NEXT_OPEN_HORIZON_DAYS` (clocks too far apart to overlap)."""
        if len(zones) == 1:
            return self.next_open(after, zones[0])
        limit = after + timedelta(days=NEXT_OPEN_HORIZON_DAYS)
        at = after
        while at < limit:
            latest = at
            for zone in zones:
                opens = self.next_open(at, zone)
                if opens is None:
                    return None
                latest = max(latest, opens)
            if latest == at:
                return at
            at = latest
        return None

    def closed_reason(self, at: datetime, tz: ZoneInfo) -> str | None:
        """Why the window is closed at ``at`` ("Shabbat", "Yom Kippur", "blocked date",
        "outside hours", "not a calling day"), or None when open. For stats and logs."""
        if self.is_open(at, tz):
            return None
        day = _local(at, tz).date()
        if day in self.blocked_dates:
            return "blocked date"
        reason = closed_reason(self.calendar, day)
        if reason is not None:
            return reason
        if day.weekday() not in self.days:
            return "not a calling day"
        return "outside hours"


def _local(at: datetime, tz: ZoneInfo) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("calling-window times must be timezone-aware")
    return at.astimezone(tz)


__all__ = ["NEXT_OPEN_HORIZON_DAYS", "CallingWindow", "Interval"]
