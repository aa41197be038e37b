"""Free-slot finding: never past, never Shabbat, busy intervals and preferences respected."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from voicebot.brain.slots import BusinessCalendar, free_slots, is_bookable, spread

TZ = ZoneInfo("Asia/Jerusalem")
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)
# Misconfigured on purpose: every day of the week is "business".
ALL_WEEK = BusinessCalendar(
    tz=TZ,
    business_days=frozenset(range(7)),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


def test_slots_are_future_and_on_half_hours() -> None:
    """Slots start at least the lead time after now, on :00 or :30."""
    now = datetime(2025, 3, 11, 10, 7, tzinfo=TZ)
    slots = free_slots(CAL, now=now, limit=20)
    assert slots[0] == datetime(2025, 3, 11, 11, 30, tzinfo=TZ)
    assert all(s >= now + timedelta(hours=1) and s.minute in (0, 30) for s in slots)


def test_never_on_shabbat_or_friday_afternoon() -> None:
    """Even if every day is configured, no slot falls on Saturday or after Friday 13:00."""
    now = datetime(2025, 3, 13, 17, 0, tzinfo=TZ)  # Thursday evening
    slots = free_slots(ALL_WEEK, now=now, limit=200)
    assert slots
    assert all(s.weekday() != 5 for s in slots)
    friday = [s for s in slots if s.weekday() == 4]
    assert friday and all(s + timedelta(minutes=30) <= s.replace(hour=13, minute=0) for s in friday)


def test_busy_intervals_are_skipped() -> None:
    """A slot overlapping an existing meeting is never offered."""
    now = datetime(2025, 3, 11, 7, 0, tzinfo=TZ)
    busy = [(datetime(2025, 3, 11, 9, 0, tzinfo=TZ), datetime(2025, 3, 11, 10, 15, tzinfo=TZ))]
    slots = free_slots(CAL, now=now, busy=busy, limit=3)
    assert slots[0] == datetime(2025, 3, 11, 10, 30, tzinfo=TZ)


def test_requested_day_and_window_come_first() -> None:
    """Asking for Sunday afternoon gives Sunday slots from 14:00."""
    now = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)
    sunday = datetime(2025, 3, 16, tzinfo=TZ).date()
    slots = free_slots(CAL, now=now, day=sunday, window=(time(14), time(18)), limit=3)
    assert slots[0] == datetime(2025, 3, 16, 14, 0, tzinfo=TZ)
    assert all(s.date() == sunday for s in slots)


def test_past_day_request_is_never_in_the_past() -> None:
    """A requested day already gone still yields only future slots."""
    now = datetime(2025, 3, 11, 17, 30, tzinfo=TZ)
    slots = free_slots(CAL, now=now, day=now.date(), limit=2)
    assert all(s > now for s in slots)
    assert slots[0] == datetime(2025, 3, 12, 9, 0, tzinfo=TZ)


def test_meeting_must_end_by_closing_time() -> None:
    """17:30 fits a 30-minute meeting; 17:45 does not; Saturday never does."""
    now = datetime(2025, 3, 9, 8, 0, tzinfo=TZ)
    assert is_bookable(CAL, datetime(2025, 3, 11, 17, 30, tzinfo=TZ), now=now)
    assert not is_bookable(CAL, datetime(2025, 3, 11, 17, 45, tzinfo=TZ), now=now)
    assert not is_bookable(ALL_WEEK, datetime(2025, 3, 15, 10, 0, tzinfo=TZ), now=now)


def test_spread_avoids_back_to_back_offers() -> None:
    """Two proposals on the same day are at least two hours apart."""
    base = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)
    slots = [base + timedelta(minutes=30 * i) for i in range(8)]
    assert spread(slots, 2) == [base, base + timedelta(hours=2)]


IL_2027 = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3, 4}),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


def test_no_meeting_on_yom_kippur_and_its_eve_ends_at_one() -> None:
    """Yom Kippur 2027 (Mon 10-11) has no slot; its eve (Sun) ends at 13:00 like a Friday."""
    now = datetime(2027, 10, 10, 7, 0, tzinfo=TZ)
    slots = free_slots(IL_2027, now=now, limit=40)
    yom_kippur = datetime(2027, 10, 11, tzinfo=TZ).date()
    assert all(s.date() != yom_kippur for s in slots)
    eve = [s for s in slots if s.date() == now.date()]
    assert eve and max(eve) == datetime(2027, 10, 10, 12, 30, tzinfo=TZ)
    assert min(s for s in slots if s.date() > now.date()) == datetime(2027, 10, 12, 9, tzinfo=TZ)
    assert not is_bookable(IL_2027, datetime(2027, 10, 11, 10, 0, tzinfo=TZ), now=now)
    assert IL_2027.holiday(yom_kippur) == "Yom Kippur"


def test_holiday_week_days_are_skipped_when_asked_for() -> None:
    """Asking for Rosh Hashana's Sunday (2027-10-03) gives the next open day instead."""
    now = datetime(2027, 9, 29, 9, 0, tzinfo=TZ)
    rosh_hashana = datetime(2027, 10, 3, tzinfo=TZ).date()
    slots = free_slots(IL_2027, now=now, day=rosh_hashana, limit=3)
    assert slots[0] == datetime(2027, 10, 4, 9, 0, tzinfo=TZ)


def test_calendar_none_books_holidays_but_never_shabbat() -> None:
    """Calendar "none" drops the holidays; the Saturday rule holds whatever is configured."""
    plain = BusinessCalendar(
        tz=TZ,
        business_days=frozenset(range(7)),
        day_start=time(9, 0),
        day_end=time(18, 0),
        meeting_min=30,
        calendar="none",
    )
    now = datetime(2027, 10, 1, 8, 0, tzinfo=TZ)
    assert is_bookable(plain, datetime(2027, 10, 11, 10, 0, tzinfo=TZ), now=now)
    assert not is_bookable(plain, datetime(2027, 10, 9, 10, 0, tzinfo=TZ), now=now)
