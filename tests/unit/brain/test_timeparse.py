"""Hebrew time expressions resolved to exact instants for fixed "now" values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.timeparse import parse_hebrew_time

TZ = ZoneInfo("Asia/Jerusalem")
SUN_THU = frozenset({6, 0, 1, 2, 3})


def _t(y: int, mo: int, d: int, h: int = 9, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ)


TUE = _t(2025, 3, 11, 9, 0)  # Tuesday morning
NIGHT = _t(2025, 3, 12, 23, 50)  # Wednesday, ten to midnight
FRI = _t(2025, 3, 14, 14, 0)  # Friday afternoon
MONTH_END = _t(2025, 4, 30, 16, 0)  # last day of April (Wednesday)
YEAR_END = _t(2025, 12, 31, 11, 0)  # New Year's Eve (Wednesday)
SUN = _t(2026, 11, 29, 12, 0)  # Sunday noon

CASES: list[tuple[datetime, str, datetime, str]] = [
    (TUE, "מחר בעשר", _t(2025, 3, 12, 10), "instant"),
    (TUE, "ביום שלישי ב-14:30", _t(2025, 3, 18, 14, 30), "instant"),
    (TUE, "יום ראשון אחרי הצהריים", _t(2025, 3, 16, 14), "part_of_day"),
    (TUE, "עוד שבוע", _t(2025, 3, 18, 9), "day"),
    (TUE, "בעוד שעתיים", _t(2025, 3, 11, 11), "instant"),
    (TUE, "בשמונה בערב", _t(2025, 3, 11, 20), "instant"),
    (TUE, "רבע לשלוש", _t(2025, 3, 11, 14, 45), "instant"),
    (TUE, "חמש וחצי", _t(2025, 3, 11, 17, 30), "instant"),
    (TUE, "מחרתיים", _t(2025, 3, 13, 9), "day"),
    (TUE, "היום בארבע", _t(2025, 3, 11, 16), "instant"),
    (TUE, "ב-9", _t(2025, 3, 12, 9), "instant"),
    (TUE, "בשתיים ועשרים", _t(2025, 3, 11, 14, 20), "instant"),
    (TUE, "בעוד חצי שעה", _t(2025, 3, 11, 9, 30), "instant"),
    (TUE, "שבוע הבא", _t(2025, 3, 16, 9), "week"),
    (TUE, "יום חמישי הבא", _t(2025, 3, 20, 9), "day"),
    (TUE, "ב-3 לחודש", _t(2025, 4, 3, 9), "day"),
    (TUE, "15/12", _t(2025, 12, 15, 9), "day"),
    (TUE, "בעשר", _t(2025, 3, 11, 10), "instant"),
    (TUE, "בשבע", _t(2025, 3, 11, 19), "instant"),
    (TUE, "בשבע בבוקר", _t(2025, 3, 12, 7), "instant"),
    (TUE, "בעשר בלילה", _t(2025, 3, 11, 22), "instant"),
    (TUE, "בשתיים בצהריים", _t(2025, 3, 11, 14), "instant"),
    (TUE, "בשתים עשרה", _t(2025, 3, 11, 12), "instant"),
    (TUE, "באחת", _t(2025, 3, 11, 13), "instant"),
    (TUE, "ב 11", _t(2025, 3, 11, 11), "instant"),
    (TUE, "עשרה לחמש", _t(2025, 3, 11, 16, 50), "instant"),
    (TUE, "עשר דקות לשש", _t(2025, 3, 11, 17, 50), "instant"),
    (TUE, "שלוש ורבע", _t(2025, 3, 11, 15, 15), "instant"),
    (TUE, "בשעה 4", _t(2025, 3, 11, 16), "instant"),
    (TUE, "ב 16:00", _t(2025, 3, 11, 16), "instant"),
    (TUE, "בעוד רבע שעה", _t(2025, 3, 11, 9, 15), "instant"),
    (TUE, "בעוד שעה וחצי", _t(2025, 3, 11, 10, 30), "instant"),
    (TUE, "בעוד 10 דקות", _t(2025, 3, 11, 9, 10), "instant"),
    (TUE, "בעוד שלוש שעות", _t(2025, 3, 11, 12), "instant"),
    (TUE, "בעוד יומיים", _t(2025, 3, 13, 9), "day"),
    (TUE, "ביום רביעי", _t(2025, 3, 12, 9), "day"),
    (TUE, "ברביעי בעשר", _t(2025, 3, 12, 10), "instant"),
    (TUE, "יום שישי בבוקר", _t(2025, 3, 14, 8), "part_of_day"),
    (TUE, "ביום ראשון בעשר וחצי", _t(2025, 3, 16, 10, 30), "instant"),
    (TUE, 'מחר אחה"צ', _t(2025, 3, 12, 14), "part_of_day"),
    (TUE, "הערב", _t(2025, 3, 11, 18), "part_of_day"),
    (TUE, "ב-20 בחודש", _t(2025, 3, 20, 9), "day"),
    (TUE, "ב 5 באפריל בשלוש", _t(2025, 4, 5, 15), "instant"),
    (TUE, "בעשרים ושלושה לחודש", _t(2025, 3, 23, 9), "day"),
    (TUE, "1/1", _t(2026, 1, 1, 9), "day"),
    (TUE, "מחר בשמונה בבוקר", _t(2025, 3, 12, 8), "instant"),
    (TUE, "מחר בבוקר", _t(2025, 3, 12, 8), "part_of_day"),
    (TUE, "מחר ב-9:45", _t(2025, 3, 12, 9, 45), "instant"),
    (TUE, "בחמישי הבא בשתיים", _t(2025, 3, 20, 14), "instant"),
    (TUE, "ב-3 לחודש הבא", _t(2025, 4, 3, 9), "day"),
    (TUE, "אממ תתקשרי אליי מחר בחמש", _t(2025, 3, 12, 17), "instant"),
    (TUE, "יום שני בתשע בבוקר", _t(2025, 3, 17, 9), "instant"),
    (NIGHT, "מחר בעשר", _t(2025, 3, 13, 10), "instant"),
    (NIGHT, "בעוד חצי שעה", _t(2025, 3, 13, 0, 20), "instant"),
    (NIGHT, "בעשר", _t(2025, 3, 13, 10), "instant"),
    (NIGHT, "מחרתיים", _t(2025, 3, 14, 9), "day"),
    (NIGHT, "בעוד שעתיים", _t(2025, 3, 13, 1, 50), "instant"),
    (FRI, "בעשר", _t(2025, 3, 16, 10), "instant"),
    (FRI, "מחר בעשר", _t(2025, 3, 15, 10), "instant"),
    (FRI, "ביום ראשון", _t(2025, 3, 16, 9), "day"),
    (FRI, "שבוע הבא", _t(2025, 3, 16, 9), "week"),
    (FRI, "יום חמישי הבא", _t(2025, 3, 20, 9), "day"),
    (FRI, "ביום חמישי", _t(2025, 3, 20, 9), "day"),
    (FRI, "בחמש", _t(2025, 3, 14, 17), "instant"),
    (FRI, "אחרי הצהריים", _t(2025, 3, 14, 14), "part_of_day"),
    (MONTH_END, "מחר בעשר", _t(2025, 5, 1, 10), "instant"),
    (MONTH_END, "ב-3 לחודש", _t(2025, 5, 3, 9), "day"),
    (MONTH_END, "ב-31 לחודש", _t(2025, 5, 31, 9), "day"),
    (MONTH_END, "בעוד יומיים", _t(2025, 5, 2, 9), "day"),
    (MONTH_END, "30/4", _t(2025, 4, 30, 16), "day"),
    (YEAR_END, "מחר בעשר", _t(2026, 1, 1, 10), "instant"),
    (YEAR_END, "15/12", _t(2026, 12, 15, 9), "day"),
    (YEAR_END, "ב-2 לחודש", _t(2026, 1, 2, 9), "day"),
    (YEAR_END, "יום ראשון הבא", _t(2026, 1, 4, 9), "day"),
    (YEAR_END, "בעוד שבוע", _t(2026, 1, 7, 9), "day"),
    (YEAR_END, "ב-5 בינואר", _t(2026, 1, 5, 9), "day"),
    # A weekday said bare is the weekday; "ראשון"/"שני"/"שבת" only with a time, a part of the
    # day or "הבא"/"הזה" after them; with the article they are ordinals, never a day.
    (SUN, "ביום רביעי בעשר", _t(2026, 12, 2, 10), "instant"),
    (SUN, "רביעי בעשר", _t(2026, 12, 2, 10), "instant"),
    (SUN, "אולי רביעי בעשר", _t(2026, 12, 2, 10), "instant"),
    (SUN, "מה עם רביעי בעשר", _t(2026, 12, 2, 10), "instant"),
    (SUN, "שלישי בארבע", _t(2026, 12, 1, 16), "instant"),
    (SUN, "מה עם שלישי בארבע", _t(2026, 12, 1, 16), "instant"),
    (SUN, "רביעי", _t(2026, 12, 2, 9), "day"),
    (SUN, "ברביעי", _t(2026, 12, 2, 9), "day"),
    (SUN, "חמישי", _t(2026, 12, 3, 9), "day"),
    (SUN, "שישי בבוקר", _t(2026, 12, 4, 8), "part_of_day"),
    (SUN, "עד רביעי", _t(2026, 12, 2, 9), "day"),
    (SUN, "רביעי הקרוב", _t(2026, 12, 2, 9), "day"),
    (SUN, "רביעי הבא", _t(2026, 12, 9, 9), "day"),
    (SUN, "רביעי בשבוע הבא", _t(2026, 12, 9, 9), "day"),
    (SUN, "בשבוע הבא ביום רביעי", _t(2026, 12, 9, 9), "day"),
    (SUN, "רביעי בעוד שבועיים", _t(2026, 12, 16, 9), "day"),
    (SUN, "בעוד שבוע ביום שלישי", _t(2026, 12, 8, 9), "day"),
    (SUN, "ברביעי או בחמישי", _t(2026, 12, 2, 9), "day"),
    (SUN, "רביעי או חמישי", _t(2026, 12, 2, 9), "day"),
    (SUN, "שני בעשר", _t(2026, 11, 30, 10), "instant"),
    (SUN, "שני בשעה 3", _t(2026, 11, 30, 15), "instant"),
    (SUN, "שני בערב", _t(2026, 11, 30, 18), "part_of_day"),
    (SUN, "שני הבא", _t(2026, 12, 7, 9), "day"),
    (SUN, "ראשון בבוקר", _t(2026, 12, 6, 8), "part_of_day"),
    (SUN, 'ראשון אחה"צ', _t(2026, 12, 6, 14), "part_of_day"),
    (SUN, "ראשון הזה", _t(2026, 12, 6, 9), "day"),
    (SUN, "ראשון ב-14:30", _t(2026, 12, 6, 14, 30), "instant"),
    (SUN, "הראשון בחמש", _t(2026, 11, 29, 17), "instant"),
    (SUN, "השלישי בארבע", _t(2026, 11, 29, 16), "instant"),
    (SUN, "השני בעשר", _t(2026, 11, 30, 10), "instant"),  # tomorrow, the next open day
    (SUN, "יום שני השני בדצמבר", _t(2026, 11, 30, 9), "day"),
    (SUN, "שבת בעשר", _t(2026, 12, 5, 10), "instant"),  # the calendar refuses it, not the parser
    (SUN, "בשבת", _t(2026, 12, 5, 9), "day"),
    (SUN, "שבת הבאה", _t(2026, 12, 12, 9), "day"),
]


@pytest.mark.parametrize(("now", "text", "expected", "precision"), CASES, ids=[c[1] for c in CASES])
def test_expression_resolves_to_instant(
    now: datetime, text: str, expected: datetime, precision: str
) -> None:
    """Each expression gives the documented instant (start of its span) and precision."""
    result = parse_hebrew_time(text, now=now, tz=TZ, business_days=SUN_THU)
    assert result is not None
    assert (result.start, result.precision) == (expected, precision)
    assert result.start.utcoffset() == expected.utcoffset()


def test_case_count() -> None:
    """The table holds at least 60 expressions."""
    assert len(CASES) >= 60


@pytest.mark.parametrize("text", ["אני לא יודע", "יש לנו 5 עובדים", "כן בטח", ""])
def test_no_time_is_none(text: str) -> None:
    """Utterances that name no time return None, even when they contain a number."""
    assert parse_hebrew_time(text, now=TUE, tz=TZ) is None


@pytest.mark.parametrize(
    "text",
    ["הראשון", "השני", "השלישי", "ראשון", "שני", "שבת", "שבת שלום", "דבר ראשון", "שני דברים"],
)
def test_ordinals_and_bare_ambiguous_day_names_are_none(text: str) -> None:
    """Ordinals with the article, and "ראשון"/"שני"/"שבת" with no time after them, name no day."""
    assert parse_hebrew_time(text, now=SUN, tz=TZ, business_days=SUN_THU) is None


def test_elapsed_time_across_spring_forward() -> None:
    """ "בעוד שעה" at 01:30 on the DST start day is 03:30 summer time (one real hour)."""
    now = _t(2025, 3, 28, 1, 30)
    result = parse_hebrew_time("בעוד שעה", now=now, tz=TZ)
    assert result is not None
    assert result.start.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=1)
    assert (result.start.hour, result.start.minute) == (3, 30)


def test_elapsed_time_across_fall_back() -> None:
    """ "בעוד שעתיים" at 00:30 on the DST end day is 01:30 winter time (two real hours)."""
    now = _t(2025, 10, 26, 0, 30)
    result = parse_hebrew_time("בעוד שעתיים", now=now, tz=TZ)
    assert result is not None
    assert result.start.astimezone(UTC) - now.astimezone(UTC) == timedelta(hours=2)
    assert (result.start.hour, result.start.utcoffset()) == (1, timedelta(hours=2))


def test_nonexistent_wall_time_moves_forward() -> None:
    """02:30 on the spring-forward night does not exist and becomes 03:30."""
    result = parse_hebrew_time("מחר בשתיים וחצי בלילה", now=_t(2025, 3, 27, 10), tz=TZ)
    assert result is not None
    assert (result.start.day, result.start.hour, result.start.minute) == (28, 3, 30)
    assert result.start.utcoffset() == timedelta(hours=3)


def test_range_has_an_end() -> None:
    """ "יום ראשון אחרי הצהריים" spans 14:00–18:00 of that Sunday."""
    result = parse_hebrew_time("יום ראשון אחרי הצהריים", now=TUE, tz=TZ)
    assert result is not None
    assert result.end == _t(2025, 3, 16, 18)


def test_weeks_from_a_weekend_land_on_the_next_open_day() -> None:
    """A caller saying "בעוד שבועיים" on a Saturday night got a Saturday, and the
    agent answered "בשבת לא קובעים פגישות": a day counted in weeks is "about then", so
    it moves to the next open business day; a day counted in days stays as said."""
    tz = ZoneInfo("Asia/Jerusalem")
    saturday_night = datetime(2026, 12, 5, 21, 0, tzinfo=tz)
    sun_to_thu = frozenset({6, 0, 1, 2, 3})
    weeks = parse_hebrew_time("בעוד שבועיים", now=saturday_night, tz=tz, business_days=sun_to_thu)
    assert weeks is not None and weeks.start.date() == date(2026, 12, 20)  # a Sunday
    week = parse_hebrew_time("בעוד שבוע", now=saturday_night, tz=tz, business_days=sun_to_thu)
    assert week is not None and week.start.date() == date(2026, 12, 13)
    days = parse_hebrew_time("בעוד יומיים", now=saturday_night, tz=tz, business_days=sun_to_thu)
    assert days is not None and days.start.date() == date(2026, 12, 7)
    unbounded = parse_hebrew_time("בעוד שבועיים", now=saturday_night, tz=tz)
    assert unbounded is not None and unbounded.start.date() == date(2026, 12, 19)
