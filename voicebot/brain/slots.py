"""Free meeting slots: business days and hours, busy intervals, lead time, Shabbat, holidays.

Owns :class:`BusinessCalendar` (the booking rules, built from Settings) and the pure
functions that list and check meeting starts. A meeting day is open only when both the
business days/hours and the religious calendar allow it — the same calendar the dialer
uses (:mod:`voicebot.scheduling.calendars`): under ``"IL"`` (the default) no meeting on
Shabbat, on Jewish holidays or Israeli national days, and none after 13:00 on Fridays and
holiday eves. Whatever the configuration says, no meeting is ever placed on Saturday or
on Friday after :data:`FRIDAY_CUTOFF`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from voicebot.brain.timeparse import at
from voicebot.config import Settings
from voicebot.scheduling.calendars import CalendarName, closed_reason, day_hours

SLOT_STEP_MIN = 30  # meeting starts sit on :00 and :30
DEFAULT_LEAD_TIME_MIN = 60  # earliest start is this long after now
DEFAULT_HORIZON_DAYS = 14  # how far ahead slots are searched
FRIDAY_CUTOFF = time(13, 0)  # a Friday meeting must end by then
SATURDAY, FRIDAY = 5, 4
MIN_SPREAD_GAP_MIN = 120  # proposals on the same day differ by at least this much

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """When meetings may happen."""

    tz: ZoneInfo
    business_days: frozenset[int]  # Python weekday numbers, Monday=0
    day_start: time
    day_end: time
    meeting_min: int
    lead_time_min: int = DEFAULT_LEAD_TIME_MIN
    calendar: CalendarName = "IL"

    @classmethod
    def from_settings(
        cls, settings: Settings, *, lead_time_min: int = DEFAULT_LEAD_TIME_MIN
    ) -> BusinessCalendar:
        return cls(
            tz=settings.tz,
            business_days=settings.business_weekdays,
            day_start=settings.business_hours_start,
            day_end=settings.business_hours_end,
            meeting_min=settings.meeting_duration_min,
            lead_time_min=lead_time_min,
        )

    @property
    def meeting(self) -> timedelta:
        return timedelta(minutes=self.meeting_min)

    def day_window(self, day: date) -> Interval | None:
        """Bookable span of ``day`` in local time, or None when closed.

        Business hours intersected with the calendar's hours for that date.
        """
        if day.weekday() == SATURDAY or day.weekday() not in self.business_days:
            return None
        allowed = day_hours(self.calendar, day)
        if allowed is None:
            return None
        end_clock = min(self.day_end, FRIDAY_CUTOFF) if day.weekday() == FRIDAY else self.day_end
        start = at(day, max(self.day_start, allowed.start), self.tz)
        end = at(day, end_clock, self.tz)
        if allowed.end is not None:
            end = min(end, at(day, allowed.end, self.tz))
        return (start, end) if start < end else None

    def holiday(self, day: date) -> str | None:
        """The holiday or national day that closes ``day`` ("Yom Kippur"), None otherwise.

        Shabbat is not reported here (callers say "shabbat" from the weekday).
        """
        reason = closed_reason(self.calendar, day)
        return None if reason in (None, "Shabbat") else reason


def overlaps(start: datetime, end: datetime, busy: Sequence[Interval]) -> bool:
    """True when [start, end) intersects any busy interval."""
    return any(start < b_end and b_start < end for b_start, b_end in busy)


def is_bookable(cal: BusinessCalendar, start: datetime, *, now: datetime) -> bool:
    """True when a meeting at ``start`` fits business hours, the lead time and Shabbat rules."""
    local = start.astimezone(cal.tz)
    window = cal.day_window(local.date())
    if window is None or local < now + timedelta(minutes=cal.lead_time_min):
        return False
    return window[0] <= local and local + cal.meeting <= window[1]


def _round_up(moment: datetime, tz: ZoneInfo) -> datetime:
    local = moment.astimezone(tz)
    minutes = local.hour * 60 + local.minute + (1 if local.second or local.microsecond else 0)
    rounded = -(-minutes // SLOT_STEP_MIN) * SLOT_STEP_MIN
    return at(local.date(), time(0), tz) + timedelta(minutes=rounded)


def _day_starts(cal: BusinessCalendar, day: date, earliest: datetime) -> Iterator[datetime]:
    window = cal.day_window(day)
    if window is None:
        return
    cursor = _round_up(max(window[0], earliest), cal.tz)
    while cursor + cal.meeting <= window[1]:
        yield cursor
        cursor = (cursor.astimezone(ZoneInfo("UTC")) + timedelta(minutes=SLOT_STEP_MIN)).astimezone(
            cal.tz
        )


def free_slots(
    cal: BusinessCalendar,
    *,
    now: datetime,
    busy: Sequence[Interval] = (),
    day: date | None = None,
    window: tuple[time, time] | None = None,
    limit: int = 4,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> list[datetime]:
    """Free meeting starts, earliest first, on 30-minute marks and never in the past.

    With ``day`` the search starts on that day and continues on the following days, so
    a caller is never left without a proposal; a clock ``window`` (the afternoon) keeps
    only starts inside it, unless nothing inside it is free within the horizon.
    """
    earliest = now.astimezone(cal.tz) + timedelta(minutes=cal.lead_time_min)
    first_day = max(earliest.date(), day) if day is not None else earliest.date()
    found: list[datetime] = []
    for offset in range(horizon_days):
        current = first_day + timedelta(days=offset)
        for start in _day_starts(cal, current, earliest):
            if window is not None and not window[0] <= start.time() < window[1]:
                continue
            if not overlaps(start, start + cal.meeting, busy):
                found.append(start)
                if len(found) >= limit:
                    return found
    if not found and window is not None:
        return free_slots(cal, now=now, busy=busy, day=day, limit=limit, horizon_days=horizon_days)
    return found


def spread(slots: Sequence[datetime], count: int) -> list[datetime]:
    """Pick ``count`` slots that differ enough to be worth offering (not 10:00 and 10:30)."""
    chosen: list[datetime] = []
    for slot in slots:
        if all(
            slot.date() != c.date() or abs(slot - c) >= timedelta(minutes=MIN_SPREAD_GAP_MIN)
            for c in chosen
        ):
            chosen.append(slot)
        if len(chosen) == count:
            return chosen
    for slot in slots:
        if len(chosen) == count:
            break
        if slot not in chosen:
            chosen.append(slot)
    return sorted(chosen)
