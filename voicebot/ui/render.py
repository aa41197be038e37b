"""Templates and the Israeli way of writing dates, times and durations.

Owns the Jinja2 environment (autoescaped, templates shipped in the package) and
:func:`page`, which renders a template with what every page needs: the translator
``t``, the text direction, the CSRF token, the current section and the time zone.
Dates are ``29.11.2026``, times 24-hour ``14:05``, weeks start on Sunday, all in
``TIMEZONE``.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import HTMLResponse

from voicebot.api.state import app_state
from voicebot.ui.auth import csrf_token
from voicebot.ui.messages import DEFAULT_LANGUAGE, DIRECTIONS, translate

TEMPLATES_DIR = Path(__file__).parent / "templates"
SECONDS_PER_MINUTE = 60
FIRST_QUERY_DAY = date(2000, 1, 1)
LAST_QUERY_DAY = date(2999, 12, 31)
"""The days a filter may name; outside them (``9999-12-31`` would overflow a day's end
or the UTC conversion) a filter date counts as not given."""


class RowIdConvertor(IntegerConvertor):
    """``{name:rowid}``: a row id that fits the database's 32-bit key (1-9 digits);
    a longer number is no route (404), not an overflow in the driver (500)."""

    regex = "[0-9]{1,9}"


register_url_convertor("rowid", RowIdConvertor())


def query_day(text: str | None) -> date | None:
    """A ``YYYY-MM-DD`` filter value; None when absent, malformed or out of range."""
    try:
        day = date.fromisoformat(text) if text else None
    except ValueError:
        return None
    if day is None or not FIRST_QUERY_DAY <= day <= LAST_QUERY_DAY:
        return None
    return day


def il_date(value: datetime | date | None, tz: ZoneInfo) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.astimezone(tz).date()
    return f"{value.day:02d}.{value.month:02d}.{value.year}"


def il_time(value: datetime | None, tz: ZoneInfo) -> str:
    if value is None:
        return "—"
    return f"{value.astimezone(tz):%H:%M}"


def il_datetime(value: datetime | None, tz: ZoneInfo) -> str:
    if value is None:
        return "—"
    return f"{il_date(value, tz)} {il_time(value, tz)}"


def duration(seconds: int | None) -> str:
    """``3:07`` (minutes:seconds); ``—`` when unknown."""
    if seconds is None:
        return "—"
    return f"{seconds // SECONDS_PER_MINUTE}:{seconds % SECONDS_PER_MINUTE:02d}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = duration
    return env


ENV = _environment()


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render ``template`` for ``request`` with the console's common context."""
    settings = app_state(request).settings
    tz = settings.tz
    language = DEFAULT_LANGUAGE

    def t(message_id: str, **values: object) -> str:
        return translate(language, message_id, **values)

    common: dict[str, Any] = {
        "request": request,
        "t": t,
        "lang": language,
        "dir": DIRECTIONS[language],
        "csrf_token": csrf_token(request.session),
        "signed_in_with_key": settings.api_key is not None,
        "il_date": lambda v: il_date(v, tz),
        "il_time": lambda v: il_time(v, tz),
        "il_datetime": lambda v: il_datetime(v, tz),
        "section": template.split("/")[0].split(".")[0],
        "tz": tz,
    }
    common.update(context or {})
    body = ENV.get_template(template).render(common)
    return HTMLResponse(body, status_code=status_code, headers=headers)
