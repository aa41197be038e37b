"""Religious and national calendars: on which dates, and until when, we may call or meet.

Owns the per-date hours a calendar allows, before any campaign or business-hours
setting narrows them:

- ``"IL"``: Sunday–Thursday 09:00–20:00; Friday and the eve of a holiday 09:00–13:00;
  closed all of Saturday, on Jewish holidays and on Israeli national days (Rosh Hashana,
  Yom Kippur, Sukkot, Shemini Atzeret, Pesach first and seventh days, Shavuot,
  Yom HaZikaron, Yom Ha'atzmaut). Saturday stays closed after Shabbat ends: we do not
  compute havdalah times, and a call on Saturday night is not worth the risk.
- ``"none"``: every date open all day (other countries, tests).

Holiday dates come from the ``holidays`` package (its Israel calendar computes the
Hebrew calendar itself and moves Yom HaZikaron / Yom Ha'atzmaut off Shabbat as the law
does). Pure and synchronous; per-year holiday sets are cached (bounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from functools import lru_cache
from typing import Final, Literal

import holidays

CalendarName = Literal["IL", "none"]
CALENDAR_NAMES: Final[tuple[CalendarName, ...]] = ("IL", "none")

IL_DAY_START: Final = time(9, 0)
IL_DAY_END: Final = time(20, 0)
IL_SHORT_DAY_END: Final = time(13, 0)  # Fridays and holiday eves end here
FRIDAY, SATURDAY = 4, 5  # Python weekday numbers, Monday=0
# Holidays in the ``holidays`` Israel "optional" category that close the day for us
# too (English names, the package's ``en_US`` localisation). Every "public" one does.
IL_OPTIONAL_CLOSED_PREFIXES: Final = ("Remembrance Day",)  # Yom HaZikaron
HOLIDAY_YEARS_CACHED: Final = 16  # bound on the per-year holiday cache


@dataclass(frozen=True, slots=True)
class DayHours:
    """Hours a calendar allows on one date, local clock; ``end`` None means midnight."""

    start: time
    end: time | None
    reason: str = ""  # why the day is short ("Friday", "eve of Yom Kippur"), empty if not


@lru_cache(maxsize=HOLIDAY_YEARS_CACHED)
def il_closed_dates(year: int) -> dict[date, str]:
    """Dates of ``year`` closed by the IL calendar for holidays → holiday name (English)."""
    closed: dict[date, str] = {}
    public = holidays.country_holidays("IL", years=year, language="en_US")
    closed.update({day: str(name) for day, name in public.items()})
    optional = holidays.country_holidays(
        "IL", years=year, categories=("optional",), language="en_US"
    )
    for day, name in optional.items():
        if str(name).startswith(IL_OPTIONAL_CLOSED_PREFIXES):
            closed[day] = str(name)
    return closed


def warm_holiday_tables(today: date) -> None:
    """Compute the IL holiday sets of ``today``'s year and the next, at start-up.

    The first :func:`il_closed_dates` of a process imports the ``holidays`` Israel
    calendar and its translations and computes the Hebrew calendar: ~170 ms of CPU. Left
    to the first slot proposal it ran on the event loop mid-call and stalled every live
    call (the server's worst loop lag at 200 rule calls, with underruns)."""
    il_closed_dates(today.year)
    il_closed_dates(today.year + 1)


def il_holiday(day: date) -> str | None:
    """Name of the IL holiday or national day on ``day`` (None on an ordinary date)."""
    return il_closed_dates(day.year).get(day)


def day_hours(calendar: CalendarName, day: date) -> DayHours | None:
    """What ``calendar`` allows on ``day``: its hours, or None when the whole day is closed.

    Raises ``ValueError`` for an unknown calendar name.
    """
    if calendar == "none":
        return DayHours(start=time(0, 0), end=None)
    if calendar != "IL":
        raise ValueError(f"unknown calendar {calendar!r}; use one of {', '.join(CALENDAR_NAMES)}")
    if day.weekday() == SATURDAY or il_holiday(day) is not None:
        return None
    eve_of = il_holiday(day + timedelta(days=1))
    if eve_of is not None:
        return DayHours(start=IL_DAY_START, end=IL_SHORT_DAY_END, reason=f"eve of {eve_of}")
    if day.weekday() == FRIDAY:
        return DayHours(start=IL_DAY_START, end=IL_SHORT_DAY_END, reason="Friday")
    return DayHours(start=IL_DAY_START, end=IL_DAY_END)


def closed_reason(calendar: CalendarName, day: date) -> str | None:
    """Why ``calendar`` closes all of ``day`` ("Shabbat", "Yom Kippur"), or None if open."""
    if calendar != "IL":
        return None
    if day.weekday() == SATURDAY:
        return "Shabbat"
    return il_holiday(day)


@lru_cache(maxsize=HOLIDAY_YEARS_CACHED)
def _il_holiday_names(year: int, language: str) -> dict[date, str]:
    names = holidays.country_holidays("IL", years=year, language=language)
    optional = holidays.country_holidays(
        "IL", years=year, categories=("optional",), language=language
    )
    return {day: str(name) for day, name in (*optional.items(), *names.items())}


def il_holiday_name(day: date, language: str) -> str | None:
    """The name of the IL holiday that closes ``day`` in ``language`` ("he", "en_US"),
    None on a day the IL calendar does not close for a holiday."""
    if il_holiday(day) is None:
        return None
    return _il_holiday_names(day.year, language).get(day) or il_holiday(day)
