"""Window-field parsers: accept what clients send, refuse with the field and the bad value."""

from __future__ import annotations

from datetime import date, time

import pytest

from voicebot.scheduling import (
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


@pytest.mark.parametrize("value", ["Sun,Mon", "sun, MON", ["SUN", "monday"], "sun,mon,sun"])
def test_window_days_any_case_string_or_list(value: str | list[str]) -> None:
    """Day names in any case, as a string or a list, parse to Monday=0 weekday numbers."""
    assert parse_window_days(value) == frozenset({6, 0})


@pytest.mark.parametrize(("value", "bad"), [("Sun,Mno", "'mno'"), (["sun", "x"], "'x'")])
def test_window_days_unknown_name_is_named(value: str | list[str], bad: str) -> None:
    """An unknown day raises a ValueError naming the field and the value."""
    with pytest.raises(ValueError, match=bad) as info:
        parse_window_days(value)
    assert isinstance(info.value, WindowFieldError) and info.value.field == "window_days"


def test_window_days_empty_is_refused() -> None:
    """No day at all is refused (a campaign that can never dial)."""
    with pytest.raises(WindowFieldError, match="no day"):
        parse_window_days(" , ")


def test_window_days_canonical_form_is_sunday_first() -> None:
    """Stored form lists days Sunday first, lower case, no spaces."""
    assert format_window_days(parse_window_days("Fri,sun,Tue")) == "sun,tue,fri"


@pytest.mark.parametrize("bad", ["9:00", "24:00", "09:60", "0900", "", "noon"])
def test_clock_must_be_hh_mm(bad: str) -> None:
    """Clocks are strict 24-hour HH:MM; anything else names the field."""
    with pytest.raises(WindowFieldError, match="window_start"):
        parse_clock(bad, field="window_start")


def test_window_end_after_start() -> None:
    """window_end must come after window_start; the error names window_end."""
    assert parse_window_times("09:00", "19:30") == (time(9), time(19, 30))
    with pytest.raises(WindowFieldError) as info:
        parse_window_times("19:00", "09:00")
    assert info.value.field == "window_end"


def test_window_end_may_be_the_end_of_the_day() -> None:
    """window_end "24:00" is the end of the local day (time.max, stored back as "24:00");
    only the end may be 24:00, and nothing past it is a clock."""
    assert parse_window_times("00:00", "24:00") == (time(0), time.max)
    assert parse_clock(" 24:00 ", field="window_end", end_of_day=True) == time.max
    assert format_clock(time.max) == "24:00" and format_clock(time(9, 5)) == "09:05"
    with pytest.raises(WindowFieldError, match="window_start"):
        parse_window_times("24:00", "24:00")
    for bad in ("24:01", "25:00", "24:60"):
        with pytest.raises(WindowFieldError, match="00:00 to 24:00"):
            parse_window_times("09:00", bad)


def test_blocked_dates_iso_only() -> None:
    """Blocked dates are ISO YYYY-MM-DD, list or comma string; others name the bad value."""
    assert parse_blocked_dates(["2027-10-12", "2027-10-12"]) == frozenset({date(2027, 10, 12)})
    assert parse_blocked_dates("2027-10-12, 2027-10-13") == {date(2027, 10, 12), date(2027, 10, 13)}
    assert parse_blocked_dates(None) == frozenset()
    assert format_blocked_dates({date(2027, 10, 13), date(2027, 10, 12)}) == [
        "2027-10-12",
        "2027-10-13",
    ]
    for bad in ["12/10/2027", "2027-13-01", "20271012"]:
        with pytest.raises(WindowFieldError, match="blocked_dates"):
            parse_blocked_dates([bad])


def test_calendar_and_timezone_names() -> None:
    """Calendars are IL or none (any case); zones must be IANA names."""
    assert parse_calendar("il") == "IL" and parse_calendar("None") == "none"
    with pytest.raises(WindowFieldError, match="calendar"):
        parse_calendar("US")
    assert parse_timezone("America/New_York") == "America/New_York"
    with pytest.raises(WindowFieldError, match="Mars/Base"):
        parse_timezone("Mars/Base")
