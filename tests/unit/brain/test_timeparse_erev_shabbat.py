""" "ערב שבת" is Friday evening (Shabbat's eve), not this evening."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.timeparse import parse_hebrew_time

TZ = ZoneInfo("Asia/Jerusalem")
SUNDAY_NOON = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)
FRIDAY = date(2026, 12, 4)


@pytest.mark.parametrize(
    ("text", "hour"),
    [
        ("ערב שבת", None),
        ("בערב שבת", None),
        ("מה עם ערב שבת", None),
        ("ערב שבת בשש", 18),
    ],
)
def test_erev_shabbat_is_friday(text: str, hour: int | None) -> None:
    """Said on Sunday noon: the coming Friday (4 Dec), in the evening or at the hour said."""
    got = parse_hebrew_time(text, now=SUNDAY_NOON, tz=TZ)
    assert got is not None
    assert got.start.date() == FRIDAY
    if hour is None:
        assert got.part_of_day == "evening"
    else:
        assert got.start.hour == hour


def test_shabbat_evening_is_saturday() -> None:
    """ "שבת בערב" (Saturday evening) stays Saturday."""
    got = parse_hebrew_time("שבת בערב", now=SUNDAY_NOON, tz=TZ)
    assert got is not None and got.start.date() == date(2026, 12, 5)
