"""The LLM's schedule_callback is refused when the dialer would not call at that time."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.llm_tools import callback_problem
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2026, 9, 14, 9, 0, tzinfo=TZ)  # Monday, a week before Yom Kippur
CAL = BusinessCalendar(
    tz=TZ, business_days=frozenset({6, 0, 1, 2, 3}), day_start=time(9), day_end=time(18),
    meeting_min=30,
)  # fmt: skip


@pytest.mark.parametrize(
    ("when", "problem"),
    [
        (datetime(2026, 9, 21, 11, 0, tzinfo=TZ), "holiday"),  # Yom Kippur
        (datetime(2026, 9, 20, 16, 0, tzinfo=TZ), "holiday"),  # its eve, after 13:00
        (datetime(2026, 9, 15, 20, 30, tzinfo=TZ), "outside_calling_hours"),  # IL calls end 20:00
        (datetime(2026, 9, 15, 8, 30, tzinfo=TZ), "outside_calling_hours"),  # start 09:00
        (datetime(2026, 9, 19, 11, 0, tzinfo=TZ), "shabbat"),
        (datetime(2026, 9, 15, 19, 30, tzinfo=TZ), None),
        (datetime(2026, 9, 20, 11, 0, tzinfo=TZ), None),  # eve of Yom Kippur, morning
    ],
)
def test_callback_follows_the_calling_calendar(when: datetime, problem: str | None) -> None:
    """Holidays, holiday eves after their short day and the hours outside the IL calling
    day are refused (they were accepted: a callback promised for Yom Kippur)."""
    assert callback_problem(when, now=NOW, calendar=CAL) == problem
