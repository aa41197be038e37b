"""Validators for calling-window fields, for the API (on write) and for stored rows.

Each parser takes what a client may send (a string, or a list where it makes sense)
and returns the typed value, or raises :class:`WindowFieldError` — a ``ValueError``
naming the field and the bad value, so a pydantic ``field_validator`` that calls it
turns into a 422 naming the field with no extra code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, time
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voicebot.scheduling.calendars import CALENDAR_NAMES, CalendarName

# Python weekday numbers (Monday=0) by English name; the week is written Sunday first.
DAY_NUMBERS: Final = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
FULL_DAY_NAMES: Final = {
    "monday": 0,
    "tuesday": 1,
    "wednesday": 2,
    "thursday": 3,
    "friday": 4,
    "saturday": 5,
    "sunday": 6,
}
WEEK_ORDER: Final = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
CLOCK_PATTERN: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
END_OF_DAY: Final = "24:00"
"""``window_end`` only: the end of the local day (ISO 8601's 24:00), so a window can cover
the whole day; ``23:59`` leaves the last minute closed (intervals are half-open)."""
MAX_BLOCKED_DATES: Final = 366  # a year of blocked dates is plenty; bounds the field


class WindowFieldError(ValueError):
    """A window field has a bad value; ``field`` names it (``window_days``…)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_window_days(value: str | Iterable[str], *, field: str = "window_days") -> frozenset[int]:
    """``"Sun,Mon"`` or ``["sun", "monday"]`` (any case) → weekday numbers, Monday=0.

    Raises :class:`WindowFieldError` naming each unknown day, or when no day is given.
    """
    items = _items(value, field, "a list of day names")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise WindowFieldError(field, f"{item!r} is not a day name")
        if item.strip():
            names.append(item.strip().lower())
    unknown = [n for n in names if n not in DAY_NUMBERS and n not in FULL_DAY_NAMES]
    if unknown:
        raise WindowFieldError(
            field, f"unknown day {', '.join(map(repr, unknown))}; use {','.join(WEEK_ORDER)}"
        )
    if not names:
        raise WindowFieldError(field, f"no day given; use {','.join(WEEK_ORDER)}")
    return frozenset(DAY_NUMBERS.get(n, FULL_DAY_NAMES.get(n, -1)) for n in names)


def format_window_days(days: Iterable[int]) -> str:
    """Weekday numbers → the canonical stored form, Sunday first: ``"sun,mon,tue"``."""
    wanted = set(days)
    return ",".join(name for name in WEEK_ORDER if DAY_NUMBERS[name] in wanted)


def parse_clock(value: str | time, *, field: str, end_of_day: bool = False) -> time:
    """``"09:00"`` (24-hour HH:MM) → ``time``; raises :class:`WindowFieldError`.

    With ``end_of_day`` (a window's end), ``"24:00"`` is accepted and returns ``time.max``
    (23:59:59.999999: the half-open interval then covers the whole local day).
    """
    if isinstance(value, time):
        if end_of_day and value == time.max:
            return time.max
        return value.replace(second=0, microsecond=0, tzinfo=None)
    if end_of_day and isinstance(value, str) and value.strip() == END_OF_DAY:
        return time.max
    match = CLOCK_PATTERN.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        last = END_OF_DAY if end_of_day else "23:59"
        raise WindowFieldError(field, f"{value!r} is not a time; use HH:MM, 00:00 to {last}")
    return time(int(match.group(1)), int(match.group(2)))


def format_clock(value: time) -> str:
    """A parsed clock → its stored ``HH:MM`` form (``time.max`` → ``"24:00"``)."""
    return END_OF_DAY if value == time.max else value.strftime("%H:%M")


def parse_window_times(start: str | time, end: str | time) -> tuple[time, time]:
    """Both window clocks; ``window_end`` must be after ``window_start`` (same day) and may
    be ``"24:00"`` (the end of the day, returned as ``time.max``)."""
    start_clock = parse_clock(start, field="window_start")
    end_clock = parse_clock(end, field="window_end", end_of_day=True)
    if end_clock <= start_clock:
        raise WindowFieldError(
            "window_end",
            f"{format_clock(end_clock)} must be after window_start {format_clock(start_clock)}",
        )
    return start_clock, end_clock


def parse_blocked_dates(
    value: str | Iterable[str | date] | None, *, field: str = "blocked_dates"
) -> frozenset[date]:
    """ISO dates, as a list or a comma-separated string → a set of dates (None → empty)."""
    if value is None:
        return frozenset()
    items = _items(value, field, "a list of dates")
    dates: set[date] = set()
    for item in items:
        if isinstance(item, date):
            dates.add(item)
            continue
        if not isinstance(item, str):
            raise WindowFieldError(field, f"{item!r} is not a date; use YYYY-MM-DD")
        text = item.strip()
        if not text:
            continue
        try:
            if len(text) != len("2027-10-11"):
                raise ValueError(text)
            dates.add(date.fromisoformat(text))
        except ValueError:
            raise WindowFieldError(field, f"{text!r} is not a date; use YYYY-MM-DD") from None
    if len(dates) > MAX_BLOCKED_DATES:
        raise WindowFieldError(field, f"at most {MAX_BLOCKED_DATES} dates")
    return frozenset(dates)


def format_blocked_dates(dates: Iterable[date]) -> list[str]:
    """Blocked dates → sorted ISO strings (the stored and returned form)."""
    return [d.isoformat() for d in sorted(set(dates))]


def parse_calendar(value: str, *, field: str = "calendar") -> CalendarName:
    """``"IL"``/``"il"`` or ``"none"`` → the canonical calendar name."""
    if isinstance(value, str):
        for name in CALENDAR_NAMES:
            if value.strip().lower() == name.lower():
                return name
    raise WindowFieldError(field, f"unknown calendar {value!r}; use {' or '.join(CALENDAR_NAMES)}")


def parse_timezone(value: str, *, field: str = "timezone") -> str:
    """An IANA zone name (``"America/New_York"``); raises :class:`WindowFieldError`."""
    if not isinstance(value, str) or not value:
        raise WindowFieldError(field, f"unknown time zone {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise WindowFieldError(field, f"unknown time zone {value!r}") from None
    return value


def _items(value: object, field: str, what: str) -> list[object]:
    """A comma-separated string or a list/tuple/set → its items; anything else refused."""
    if isinstance(value, str):
        return list(value.split(","))
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise WindowFieldError(field, f"{value!r} is not {what}")
