"""Calling window: IL calendar ∩ campaign window, on the lead's own clock, frozen instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from voicebot.scheduling import CallingWindow, day_hours, il_holiday, lead_timezone

IL = ZoneInfo("Asia/Jerusalem")
NY = ZoneInfo("America/New_York")
ALL_WEEK = "sun,mon,tue,wed,thu,fri,sat"
# The campaign asks for every day and every hour it can: only the calendar limits it.
WIDE = CallingWindow.from_fields(window_days=ALL_WEEK, window_start="00:00", window_end="23:59")
DEFAULT = CallingWindow.from_fields(
    window_days="sun,mon,tue,wed,thu,fri", window_start="09:00", window_end="19:00"
)


def il(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=IL)


def open_minutes(
    window: CallingWindow, start: datetime, end: datetime, tz: ZoneInfo
) -> list[datetime]:
    """Every open minute in [start, end), stepping on UTC minutes."""
    found, cursor = [], start.astimezone(UTC)
    while cursor < end:
        if window.is_open(cursor, tz):
            found.append(cursor)
        cursor += timedelta(minutes=1)
    return found


def test_no_dial_from_friday_1300_to_saturday_night() -> None:
    """Under IL no minute from Friday 13:00 to Sunday 09:00 is open, even for a 7-day window."""
    closed = open_minutes(WIDE, il(2027, 11, 5, 13, 0), il(2027, 11, 7, 9, 0), IL)
    assert closed == []
    assert WIDE.is_open(il(2027, 11, 5, 12, 59), IL)
    assert WIDE.is_open(il(2027, 11, 7, 9, 0), IL)
    assert not WIDE.is_open(il(2027, 11, 6, 21, 0), IL)  # Saturday night stays closed


def test_yom_kippur_2027_from_the_library_is_closed_all_day() -> None:
    """Yom Kippur 5788 falls on 2027-10-11 and no minute of it is open; its eve ends at 13:00."""
    assert il_holiday(date(2027, 10, 11)) == "Yom Kippur"
    assert day_hours("IL", date(2027, 10, 11)) is None
    assert open_minutes(WIDE, il(2027, 10, 11), il(2027, 10, 12), IL) == []
    eve = open_minutes(WIDE, il(2027, 10, 10), il(2027, 10, 11), IL)
    assert eve[0] == il(2027, 10, 10, 9, 0) and eve[-1] == il(2027, 10, 10, 12, 59)


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2027, 10, 3), "Rosh Hashanah"),
        (date(2027, 10, 16), "Sukkot"),
        (date(2027, 10, 23), "Simchat Torah / Shemini Atzeret"),
        (date(2027, 4, 22), "Pesach"),
        (date(2027, 4, 28), "Seventh day of Pesach"),
        (date(2027, 6, 11), "Shavuot"),
        (date(2027, 5, 11), "Remembrance Day"),
        (date(2027, 5, 12), "Independence Day"),
    ],
)
def test_il_holidays_and_national_days_are_closed(day: date, name: str) -> None:
    """Each required holiday and national day closes the whole date under IL."""
    assert (il_holiday(day) or "").startswith(name)
    assert day_hours("IL", day) is None


def test_chol_hamoed_is_an_ordinary_day() -> None:
    """The intermediate days of Sukkot are not holidays (only the first day and Shemini Atzeret)."""
    hours = day_hours("IL", date(2027, 10, 18))
    assert hours is not None and hours.end == time(20, 0)


def test_il_weekday_hours_and_campaign_intersection() -> None:
    """Sun–Thu 09:00–20:00 under IL; the campaign's 19:00 end and day list narrow it."""
    tuesday = date(2027, 11, 2)
    assert WIDE.interval_on(tuesday, IL) == (il(2027, 11, 2, 9), il(2027, 11, 2, 20))
    assert DEFAULT.interval_on(tuesday, IL) == (il(2027, 11, 2, 9), il(2027, 11, 2, 19))
    assert DEFAULT.interval_on(date(2027, 11, 5), IL) == (il(2027, 11, 5, 9), il(2027, 11, 5, 13))
    no_friday = CallingWindow.from_fields(
        window_days="sun,mon", window_start="10:00", window_end="12:00"
    )
    assert no_friday.interval_on(date(2027, 11, 5), IL) is None
    assert no_friday.interval_on(date(2027, 11, 7), IL) == (
        il(2027, 11, 7, 10),
        il(2027, 11, 7, 12),
    )


def test_calendar_none_drops_shabbat_and_holidays() -> None:
    """With calendar "none" only the campaign's own days and hours apply."""
    plain = CallingWindow.from_fields(
        window_days=ALL_WEEK, window_start="09:00", window_end="21:00", calendar="none"
    )
    assert plain.is_open(il(2027, 10, 11, 10), IL)  # Yom Kippur
    assert plain.is_open(il(2027, 11, 6, 20, 30), IL)  # Saturday evening
    assert not plain.is_open(il(2027, 11, 6, 21, 0), IL)


def test_window_to_24_00_is_open_through_midnight() -> None:
    """00:00–24:00 under calendar "none" has no closed instant; 00:00–23:59 closes the
    day's last minute (half-open intervals), so a test or a campaign meaning "all day"
    writes 24:00 (CI once ran at 23:59 Jerusalem and waited a minute for the window)."""
    all_day = CallingWindow.from_fields(
        window_days=ALL_WEEK, window_start="00:00", window_end="24:00", calendar="none"
    )
    to_2359 = CallingWindow.from_fields(
        window_days=ALL_WEEK, window_start="00:00", window_end="23:59", calendar="none"
    )
    last_minute = il(2026, 11, 29, 23, 59) + timedelta(seconds=30)
    assert all_day.is_open(last_minute, IL) and all_day.is_open(il(2026, 11, 30), IL)
    assert not to_2359.is_open(last_minute, IL)
    assert to_2359.next_open(last_minute, IL) == il(2026, 11, 30)
    assert all_day.closes_at(last_minute, IL) == datetime.combine(
        date(2026, 11, 29), time.max, tzinfo=IL
    )
    week = il(2026, 11, 29)
    assert len(open_minutes(all_day, week, week + timedelta(days=7), IL)) == 7 * 24 * 60


def test_blocked_dates_close_whole_local_dates() -> None:
    """A per-campaign blocked date closes that local date and nothing else."""
    blocked = CallingWindow.from_fields(
        window_days=ALL_WEEK,
        window_start="09:00",
        window_end="19:00",
        blocked_dates=["2027-11-02"],
    )
    assert not blocked.is_open(il(2027, 11, 2, 12), IL)
    assert blocked.closed_reason(il(2027, 11, 2, 12), IL) == "blocked date"
    assert blocked.next_open(il(2027, 11, 2, 12), IL) == il(2027, 11, 3, 9)


def test_lead_in_another_zone_is_called_in_its_own_hours() -> None:
    """A +1 212 lead is open 09:00–20:00 New York time, whatever the hour in Israel."""
    tz = lead_timezone("+12125550100", None, "Asia/Jerusalem")
    assert tz.key == "America/New_York"
    tuesday_10am_ny = datetime(2027, 11, 2, 10, 0, tzinfo=NY)  # 17:00 in Israel
    assert WIDE.is_open(tuesday_10am_ny, tz)
    tuesday_7pm_ny = datetime(2027, 11, 2, 19, 0, tzinfo=NY)  # 02:00 Wednesday in Israel
    assert WIDE.is_open(tuesday_7pm_ny, tz)
    assert not WIDE.is_open(tuesday_7pm_ny, IL)
    tuesday_8am_ny = datetime(2027, 11, 2, 8, 0, tzinfo=NY)  # 15:00 in Israel: open there
    assert WIDE.is_open(tuesday_8am_ny, IL)
    assert not WIDE.is_open(tuesday_8am_ny, tz)
    # Friday 14:00 in New York: its own Friday cut-off has passed.
    assert not WIDE.is_open(datetime(2027, 11, 5, 14, 0, tzinfo=NY), tz)


def test_next_open_across_shabbat() -> None:
    """From Friday 13:00 the next open minute is Sunday 09:00."""
    assert DEFAULT.next_open(il(2027, 11, 5, 13, 0), IL) == il(2027, 11, 7, 9, 0)
    assert DEFAULT.next_open(il(2027, 11, 5, 11, 0), IL) == il(2027, 11, 5, 11, 0)


def test_next_open_across_holiday_and_shabbat() -> None:
    """Rosh Hashana 2027 (Sat–Sun) after a Friday eve: next open is Monday 09:00."""
    assert DEFAULT.next_open(il(2027, 10, 1, 13, 0), IL) == il(2027, 10, 4, 9, 0)
    # Yom Kippur eve afternoon → the morning after Yom Kippur.
    assert DEFAULT.next_open(il(2027, 10, 10, 13, 0), IL) == il(2027, 10, 12, 9, 0)


def test_next_open_is_none_when_every_day_is_excluded() -> None:
    """A Saturday-only IL campaign never opens: next_open says None instead of looping."""
    saturday_only = CallingWindow.from_fields(
        window_days="sat", window_start="09:00", window_end="19:00"
    )
    assert saturday_only.next_open(il(2027, 11, 1), IL) is None


def test_naive_datetimes_are_refused() -> None:
    """A naive instant raises instead of being read in some implicit zone."""
    with pytest.raises(ValueError, match="aware"):
        WIDE.is_open(datetime(2027, 11, 2, 10), IL)


def test_warm_holiday_tables_computes_this_year_and_the_next_ahead_of_calls() -> None:
    """After the start-up warm-up, the holiday lookups a call makes (this year's and the
    next year's dates) are answered from the cache: nothing is computed on the event loop."""
    from voicebot.scheduling.calendars import il_closed_dates, warm_holiday_tables

    il_closed_dates.cache_clear()
    warm_holiday_tables(date(2027, 12, 30))
    assert il_closed_dates.cache_info().currsize == 2
    misses = il_closed_dates.cache_info().misses
    assert il_holiday(date(2027, 10, 11)) == "Yom Kippur"
    assert il_holiday(date(2028, 1, 3)) is None
    assert il_closed_dates.cache_info().misses == misses
