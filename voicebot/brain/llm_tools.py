"""The LLM brain's tools: their specs, their argument models and the rules on their times.

Owns what the model may call (:data:`TOOL_SPECS`), how each call's JSON arguments are
validated (pydantic, strict: an ISO 8601 string, never a number, for a time) and the
calendar rules a requested time must pass before anything is stored (not in the past,
not on Shabbat, inside business hours, far enough ahead). Dispatch to
:class:`~voicebot.brain.base.BookingTools` lives in :mod:`voicebot.brain.llm_toolbox`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voicebot.brain.slots import FRIDAY, FRIDAY_CUTOFF, SATURDAY, BusinessCalendar
from voicebot.providers.base import ToolSpec
from voicebot.scheduling.calendars import day_hours

MAX_NOTES_CHARS = 500
MAX_REASON_CHARS = 200
BOOKING_HORIZON_DAYS = 30  # a meeting further ahead than this is refused
CALLBACK_HORIZON_DAYS = 30  # so is a callback
CALLBACK_MIN_LEAD_MIN = 5  # a callback at least this far ahead
CALLBACK_EARLIEST = time(8, 0)  # callbacks are placed between these local clocks
CALLBACK_LATEST = time(21, 0)

EndReason = Literal["goodbye", "wrong_number", "not_interested", "voicemail", "other"]


class _Args(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", str_strip_whitespace=True, frozen=True)


class NoArgs(_Args):
    """Tools that take no arguments (extra keys are ignored)."""


class BookMeetingArgs(_Args):
    start: datetime
    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)


class ProposeSlotsArgs(_Args):
    day: date | None = None


class ScheduleCallbackArgs(_Args):
    when: datetime


class NotInterestedArgs(_Args):
    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)


class EndCallArgs(_Args):
    reason: EndReason = "goodbye"


ARGUMENT_MODELS: Final[dict[str, type[_Args]]] = {
    "book_meeting": BookMeetingArgs,
    "propose_slots": ProposeSlotsArgs,
    "schedule_callback": ScheduleCallbackArgs,
    "mark_not_interested": NotInterestedArgs,
    "add_to_do_not_call": NoArgs,
    "transfer_to_human": NoArgs,
    "end_call": EndCallArgs,
}

_ISO = "זמן ב-ISO 8601 בשעון המקומי, למשל 2025-03-04T14:30:00+02:00"


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


TOOL_SPECS: Final[tuple[ToolSpec, ...]] = (
    ToolSpec(
        "propose_slots",
        "מחזיר מועדים פנויים לפגישה (עד שניים), מהיום המבוקש והלאה. לקרוא לפני הצעת מועדים.",
        _object({"day": {"type": "string", "description": "יום מבוקש, YYYY-MM-DD"}}, []),
    ),
    ToolSpec(
        "book_meeting",
        "קובע את הפגישה במועד שהוסכם. מחזיר ok או שגיאה עם מועדים חלופיים.",
        _object(
            {
                "start": {"type": "string", "description": _ISO},
                "notes": {"type": "string", "description": "מה שלמדנו על העסק, בקצרה"},
            },
            ["start"],
        ),
    ),
    ToolSpec(
        "schedule_callback",
        "קובע מתי לחזור אל הצד השני, כשעכשיו לא נוח לדבר.",
        _object({"when": {"type": "string", "description": _ISO}}, ["when"]),
    ),
    ToolSpec(
        "mark_not_interested",
        "רושם שאין עניין (אחרי ניסיון אחד לענות להתנגדות). השיחה מסתיימת.",
        _object({"reason": {"type": "string", "description": "הסיבה, בקצרה"}}, ["reason"]),
    ),
    ToolSpec(
        "add_to_do_not_call",
        "מסיר את המספר מהרשימה ולא מתקשרים אליו יותר. השיחה מסתיימת.",
        _object({}, []),
    ),
    ToolSpec("transfer_to_human", "מעביר את השיחה לנציג אנושי.", _object({}, [])),
    ToolSpec(
        "end_call",
        "מסיים את השיחה (פרידה, טעות במספר, תא קולי).",
        _object({"reason": {"type": "string", "enum": list(get_args(EndReason))}}, ["reason"]),
    ),
)


class ArgumentError(Exception):
    """A tool call's arguments are unusable; ``code`` is what the model is told."""

    def __init__(self, code: Literal["invalid_json", "invalid_arguments"], message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_arguments(name: str, raw: str) -> _Args:
    """Validate one call's raw JSON arguments against its tool's model."""
    model = ARGUMENT_MODELS[name]
    try:
        return model.model_validate_json(raw or "{}")
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise ArgumentError("invalid_json", "the arguments are not valid JSON") from exc
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in errors)
        raise ArgumentError("invalid_arguments", fields) from exc


def localize(moment: datetime, calendar: BusinessCalendar) -> datetime:
    """A model-given time in the business zone; a time without offset is taken as local."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=calendar.tz)
    return moment.astimezone(calendar.tz)


def booking_problem(cal: BusinessCalendar, start: datetime, *, now: datetime) -> str | None:
    """Why a meeting cannot start at ``start`` (an error code for the model), or None."""
    end = start + cal.meeting
    if start <= now:
        return "in_the_past"
    if start - now > timedelta(days=BOOKING_HORIZON_DAYS):
        return "too_far_ahead"
    if start.weekday() == SATURDAY or (start.weekday() == FRIDAY and end.time() > FRIDAY_CUTOFF):
        return "shabbat"
    if cal.holiday(start.date()) is not None:
        return "holiday"
    window = cal.day_window(start.date())
    if window is None or not (window[0] <= start and end <= window[1]):
        return "outside_business_hours"
    if start < now + timedelta(minutes=cal.lead_time_min):
        return "too_soon"
    return None


def callback_problem(
    when: datetime, *, now: datetime, calendar: BusinessCalendar | None = None
) -> str | None:
    """Why a callback cannot be placed at ``when`` (local time), or None.

    With ``calendar``, also the days and hours its religious calendar keeps the dialer
    from calling (holidays, the short day of a holiday eve, the IL calling day)."""
    if when < now + timedelta(minutes=CALLBACK_MIN_LEAD_MIN):
        return "in_the_past"
    if when - now > timedelta(days=CALLBACK_HORIZON_DAYS):
        return "too_far_ahead"
    if when.weekday() == SATURDAY or (when.weekday() == FRIDAY and when.time() > FRIDAY_CUTOFF):
        return "shabbat"
    earliest, latest = CALLBACK_EARLIEST, CALLBACK_LATEST
    if calendar is not None:
        hours = day_hours(calendar.calendar, when.date())
        if hours is None:
            return "holiday"
        earliest = max(earliest, hours.start)
        if hours.end is not None and when.time() > hours.end:
            return "holiday" if hours.reason else "outside_calling_hours"  # a short day
    if not earliest <= when.time() <= latest:
        return "outside_calling_hours"
    return None
