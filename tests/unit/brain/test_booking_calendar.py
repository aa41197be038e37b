"""The LLM brain's booking check names holidays as their own refusal."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from voicebot.brain.llm_tools import booking_problem
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


def test_yom_kippur_is_refused_as_holiday_and_the_day_after_is_fine() -> None:
    """A meeting on Yom Kippur 2027 is "holiday"; the next morning is bookable."""
    now = datetime(2027, 10, 5, 12, 0, tzinfo=TZ)
    assert booking_problem(CAL, datetime(2027, 10, 11, 10, 0, tzinfo=TZ), now=now) == "holiday"
    assert booking_problem(CAL, datetime(2027, 10, 12, 10, 0, tzinfo=TZ), now=now) is None
    assert (
        booking_problem(CAL, datetime(2027, 10, 10, 14, 0, tzinfo=TZ), now=now)
        == "outside_business_hours"
    )
