"""Field types of the HTTP edge: ids, text and datetimes that the databases can store.

Postgres refuses NUL in text and ids past 32 bits; Python refuses datetimes past
year 9999 when converting zones. Each type here turns such input into a validation
error (a 422 in the one error shape) instead of a 500 from the database.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field

DB_INT_MAX = 2**31 - 1
"""Largest id the databases store: ids are INTEGER columns (32-bit on Postgres)."""
EARLIEST_DATETIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_DATETIME = datetime(2100, 1, 1, tzinfo=UTC)
"""Accepted datetimes (UTC); outside this range a time is a mistake, not a plan."""

UNSTORABLE_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
"""NUL, C0 controls other than tab/newline/return, DEL and lone surrogates: text that
Postgres refuses or that no person typed. Allowed nowhere."""
LINE_BREAKING_CHARS = re.compile(r"[\t\n\r]")
"""Also refused in one-line fields (names, phones, tags)."""


def unstorable_problem(value: str) -> str | None:
    """Why ``value`` may not be stored, or None when it may."""
    match = UNSTORABLE_CHARS.search(value)
    if match is None:
        return None
    return f"control character U+{ord(match.group()):04X} is not allowed"


def _text(value: str) -> str:
    if problem := unstorable_problem(value):
        raise ValueError(problem)
    return value


def _line(value: str) -> str:
    _text(value)
    if LINE_BREAKING_CHARS.search(value):
        raise ValueError("line breaks and tabs are not allowed")
    return value


def _in_range(value: datetime) -> datetime:
    if not EARLIEST_DATETIME <= value <= LATEST_DATETIME:
        raise ValueError(
            f"must be between {EARLIEST_DATETIME.date()} and {LATEST_DATETIME.date()} (UTC)"
        )
    return value


Id = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
"""A row id: 1 … 2^31-1."""
Text = Annotated[str, AfterValidator(_text)]
"""Free text (notes, messages): line breaks allowed, other control characters not."""
Line = Annotated[str, AfterValidator(_line)]
"""One-line text (names, tags, filters): no control characters at all."""
When = Annotated[AwareDatetime, AfterValidator(_in_range)]
"""A datetime with a UTC offset, between 1970 and 2100."""


def first_unstorable(value: Any, path: str = "body") -> tuple[str, str] | None:
    """The first string (key or value) in parsed JSON that may not be stored, as
    ``(field path, problem)``; None when all are fine. ``value`` is bounded in depth."""
    if isinstance(value, str):
        problem = unstorable_problem(value)
        return None if problem is None else (path, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            found = first_unstorable(key, path) or first_unstorable(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = first_unstorable(item, f"{path}.{index}")
            if found is not None:
                return found
    return None
