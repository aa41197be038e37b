"""Lawful calling hours and the calendar shared by dialing and meeting slots.

- :mod:`~voicebot.scheduling.calendars`: the ``"IL"`` / ``"none"`` calendars (Shabbat,
  Jewish holidays, Israeli national days, short Fridays and holiday eves).
- :mod:`~voicebot.scheduling.window`: :class:`CallingWindow`, a campaign's window
  intersected with its calendar, evaluated on the lead's clock.
- :mod:`~voicebot.scheduling.timezones`: :func:`lead_timezone` from the phone number.
- :mod:`~voicebot.scheduling.validation`: parsers for window fields, raising
  :class:`WindowFieldError` (a ``ValueError`` naming the field).
"""

from __future__ import annotations

from voicebot.scheduling.calendars import (
    CALENDAR_NAMES,
    CalendarName,
    DayHours,
    closed_reason,
    day_hours,
    il_holiday,
)
from voicebot.scheduling.timezones import lead_timezone, lead_timezones, number_zone, number_zones
from voicebot.scheduling.validation import (
    WindowFieldError,
    format_blocked_dates,
    format_clock,
    format_window_days,
    parse_blocked_dates,
    parse_calendar,
    parse_clock,
    parse_timezone,
    parse_window_days,
    parse_window_times,
)
from voicebot.scheduling.window import CallingWindow

__all__ = [
    "CALENDAR_NAMES",
    "CalendarName",
    "CallingWindow",
    "DayHours",
    "WindowFieldError",
    "closed_reason",
    "day_hours",
    "format_blocked_dates",
    "format_clock",
    "format_window_days",
    "il_holiday",
    "lead_timezone",
    "lead_timezones",
    "number_zone",
    "number_zones",
    "parse_blocked_dates",
    "parse_calendar",
    "parse_clock",
    "parse_timezone",
    "parse_window_days",
    "parse_window_times",
]
