"""Two offered slots name a shared day once, as a person offering times would."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from voicebot.brain import phrases as say

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2026, 11, 29, 11, 0, tzinfo=TZ)  # Sunday


def test_same_far_day_is_said_once() -> None:
    """Two slots a week away: "ביום ראשון, שישה בדצמבר, בתשע בבוקר, או באחת עשרה בבוקר"
    (the day and date were said twice)."""
    slots = [datetime(2026, 12, 6, 9, 0, tzinfo=TZ), datetime(2026, 12, 6, 11, 0, tzinfo=TZ)]
    assert say.offer_slots(slots, NOW) == (
        "יש מקום ביום ראשון, שישה בדצמבר, בתשע בבוקר, או באחת עשרה בבוקר. מה מתאים יותר?"
    )


def test_same_day_today_and_which_slot() -> None:
    """ "היום בשתים עשרה בצהריים, או בשתיים" (was "…, או היום בשתיים")."""
    slots = [datetime(2026, 11, 29, 12, 0, tzinfo=TZ), datetime(2026, 11, 29, 14, 0, tzinfo=TZ)]
    assert say.which_slot(slots, NOW) == "מעולה. היום בשתים עשרה בצהריים, או בשתיים?"


def test_different_days_keep_both() -> None:
    """Slots on two days name each day."""
    slots = [datetime(2026, 11, 29, 14, 0, tzinfo=TZ), datetime(2026, 11, 30, 10, 0, tzinfo=TZ)]
    assert say.offer_slots(slots, NOW) == ("יש מקום היום בשתיים, או מחר בעשר בבוקר. מה מתאים יותר?")
