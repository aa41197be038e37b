"""Pydantic field types for calling-window fields, for request schemas.

Each type runs the matching parser of :mod:`voicebot.scheduling.validation` and stores
the canonical form, so a model field declared with it rejects bad input with a 422
naming the field (pydantic turns the parser's ``ValueError`` into a field error)::

    class CampaignIn(Strict):
        window_days: WindowDays = "sun,mon,tue,wed,thu"
        window_start: Clock = "09:00"
        calendar: CalendarField = "IL"
        blocked_dates: BlockedDates = []
        timezone: TimezoneName = "Asia/Jerusalem"

The cross-field rule (``window_end`` after ``window_start``) needs both values: call
:func:`~voicebot.scheduling.validation.parse_window_times` in a ``model_validator``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from voicebot.scheduling.calendars import CalendarName
from voicebot.scheduling.validation import (
    format_blocked_dates,
    format_window_days,
    parse_blocked_dates,
    parse_calendar,
    parse_clock,
    parse_timezone,
    parse_window_days,
)


def _days(value: Any) -> str:
    """``"Sun,Mon"`` or ``["sun", "monday"]`` → ``"sun,mon"``."""
    return format_window_days(parse_window_days(value))


def _clock(value: Any) -> str:
    return parse_clock(value, field="time").strftime("%H:%M")


def _dates(value: Any) -> list[str]:
    return format_blocked_dates(parse_blocked_dates(value))


def _calendar(value: Any) -> CalendarName:
    return parse_calendar(value)


def _zone(value: Any) -> str:
    return parse_timezone(value)


WindowDays = Annotated[str, BeforeValidator(_days)]
Clock = Annotated[str, BeforeValidator(_clock)]
BlockedDates = Annotated[list[str], BeforeValidator(_dates)]
CalendarField = Annotated[str, BeforeValidator(_calendar)]
TimezoneName = Annotated[str, BeforeValidator(_zone)]
