"""Digits in reply text become Hebrew words TTS reads right; slots are named naturally."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.hebrew_numbers import number_to_words
from voicebot.brain.speech_text import format_slot_hebrew, spoken_clock, to_spoken

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)  # Tuesday


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("14:30", "שתיים וחצי"),
        ("10:15", "עשר ורבע"),
        ("16:45", "רבע לחמש"),
        ("9:50", "עשרה לעשר"),
        ("13:20", "אחת ועשרים"),
        ("17:07", "חמש ושבע דקות"),
        ("12:00", "שתים עשרה"),
        ("₪250", "מאתיים וחמישים שקלים"),
        ('250 ש"ח', "מאתיים וחמישים שקלים"),
        ("₪1", "שקל אחד"),
        ("054-1234567", "אפס חמש ארבע, אחת שתיים שלוש ארבע חמש שש שבע"),
        ("3/12", "שלושה בדצמבר"),
        ("הפגישה ב-14:30", "הפגישה בשתיים וחצי"),
        ("חיסכון של 30%", "חיסכון של שלושים אחוז"),
        ("יש 1,250 לקוחות", "יש אלף מאתיים וחמישים לקוחות"),
        ("אין כאן מספרים", "אין כאן מספרים"),
    ],
)
def test_to_spoken(text: str, spoken: str) -> None:
    """Times, prices, phones, dates, percentages and numbers are spelled out."""
    assert to_spoken(text) == spoken


@pytest.mark.parametrize(
    ("n", "gender", "words"),
    [
        (0, "f", "אפס"),
        (11, "f", "אחת עשרה"),
        (15, "m", "חמישה עשר"),
        (21, "f", "עשרים ואחת"),
        (199, "m", "מאה תשעים ותשעה"),
        (2000, "f", "אלפיים"),
        (12500, "m", "שנים עשר אלף וחמש מאות"),
    ],
)
def test_number_to_words(n: int, gender: str, words: str) -> None:
    """Integers are spelled with the right gender and the spoken "ו"."""
    assert number_to_words(n, gender) == words  # type: ignore[arg-type]


def test_clock_keeps_twelve_hour_form() -> None:
    """00:30 is "שתים עשרה וחצי", not zero."""
    assert spoken_clock(0, 30) == "שתים עשרה וחצי"


@pytest.mark.parametrize(
    ("slot", "text"),
    [
        (datetime(2025, 3, 12, 10, 0, tzinfo=TZ), "מחר בעשר בבוקר"),
        (datetime(2025, 3, 11, 14, 30, tzinfo=TZ), "היום בשתיים וחצי"),
        (datetime(2025, 3, 16, 14, 30, tzinfo=TZ), "ביום ראשון בשתיים וחצי"),
        (datetime(2025, 3, 13, 18, 0, tzinfo=TZ), "ביום חמישי בשש בערב"),
        (datetime(2025, 3, 25, 9, 30, tzinfo=TZ), "ביום שלישי, עשרים וחמישה במרץ, בתשע וחצי בבוקר"),
    ],
)
def test_format_slot_hebrew(slot: datetime, text: str) -> None:
    """Slots are named relative to today, with morning/evening where a bare hour misleads."""
    assert format_slot_hebrew(slot, NOW) == text
