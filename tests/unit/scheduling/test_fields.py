"""Pydantic window fields: canonical values stored, bad values a field error naming the field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from voicebot.scheduling.fields import BlockedDates, CalendarField, Clock, TimezoneName, WindowDays


class WindowIn(BaseModel):
    window_days: WindowDays = "sun,mon,tue,wed,thu"
    window_start: Clock = "09:00"
    calendar: CalendarField = "IL"
    blocked_dates: BlockedDates = []
    timezone: TimezoneName = "Asia/Jerusalem"


def test_values_are_stored_in_canonical_form() -> None:
    """Mixed-case days, a list, "il" and dates in any order come out canonical."""
    model = WindowIn.model_validate(
        {
            "window_days": ["Fri", "SUN"],
            "calendar": "il",
            "blocked_dates": ["2027-10-13", "2027-10-12"],
            "timezone": "America/New_York",
        }
    )
    assert model.window_days == "sun,fri" and model.calendar == "IL"
    assert model.blocked_dates == ["2027-10-12", "2027-10-13"]
    assert WindowIn.model_validate({"window_days": "Sun,Mon"}).window_days == "sun,mon"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_days", "Sun,Mno"),
        ("window_days", 5),
        ("window_start", "9am"),
        ("window_start", 900),
        ("calendar", "US"),
        ("blocked_dates", ["13/10/2027"]),
        ("blocked_dates", 20271013),
        ("timezone", "Mars/Base"),
        ("timezone", None),
    ],
)
def test_bad_value_is_an_error_on_that_field(field: str, value: object) -> None:
    """Each bad value fails validation with the error located on its own field."""
    with pytest.raises(ValidationError) as info:
        WindowIn.model_validate({field: value})
    [error] = info.value.errors()
    assert error["loc"] == (field,)
