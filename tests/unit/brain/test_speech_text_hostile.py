"""Odd text on its way to TTS: never a crash, never digits left, agreement kept."""

from __future__ import annotations

import re

import pytest

from voicebot.brain.speech_text import to_spoken

DIGIT = re.compile(r"\d")


@pytest.mark.parametrize(
    "text",
    [
        "1" * 5000,  # beyond Python's int-from-string limit (4300 digits)
        "*1" * 20000,  # the library glues the starred digits into one huge run
        "99999999999999999999",  # beyond the largest number said as words
        "מספר הזמנה 12345678901234567890 נשלח",
    ],
)
def test_long_digit_runs_are_said_digit_by_digit(text: str) -> None:
    """A digit run too long to be a number is read digit by digit, not crashed on or left."""
    spoken = to_spoken(text)
    assert not DIGIT.search(spoken)


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("0.5 שעות", "חצי שעה"),
        ("תוך 0.5 ימים", "תוך חצי יום"),
        ("ב-0.5 שעות", "בחצי שעה"),
    ],
)
def test_half_of_a_unit(text: str, spoken: str) -> None:
    """ "0.5 שעות" is half an hour, not "zero hours and a half"."""
    assert to_spoken(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("٣ אנשים", "שלושה אנשים"),  # Arabic-Indic digits
        ("۵ דקות", "חמש דקות"),  # Extended Arabic-Indic
        ("２ שעות", "שעתיים"),  # full-width
        ("٢ פגישות", "שתי פגישות"),
    ],
)
def test_digits_of_other_scripts_agree_like_ascii(text: str, spoken: str) -> None:
    """Digits from other scripts (pasted from a phone or a PDF) get the same agreement."""
    assert to_spoken(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        # Weekdays written with a letter and a geresh, as Israeli schedules write them.
        ("ביום א' ב-10:00", "ביום ראשון בעשר"),
        ("ניפגש ביום ב' ב-14:30", "ניפגש ביום שני בשתיים וחצי"),
        ("ביום ג׳ בשעה 10", "ביום שלישי בשעה עשר"),
        ("ביום ה'", "ביום חמישי"),
        ("פתוח בימים א'-ה' 9:00-18:00", "פתוח בימים ראשון עד חמישי תשע עד שש"),
        ("סעיף א' בחוזה", "סעיף אלף בחוזה"),  # not a day: the letter's name, as read aloud
        # "24/7" is a phrase, not the 24th of July.
        ("זמינים 24/7", "זמינים עשרים וארבע שבע"),
        # Halves written as fractions.
        ("1/2 שעה", "חצי שעה"),
        ("½ שעה", "חצי שעה"),
        ("תוך ½ יום", "תוך חצי יום"),
        # A price per period written with a slash.
        ("₪99/חודש", "תשעים ותשעה שקלים לחודש"),
        ("99 ₪ / חודש", "תשעים ותשעה שקלים לחודש"),
        ("49.90 ש״ח/חודש", "ארבעים ותשעה שקלים ותשעים אגורות לחודש"),
        # One or two of a unit with a dual form.
        ("נחזור תוך 1-2 ימים", "נחזור תוך יום או יומיים"),
        ("1-2 שעות", "שעה או שעתיים"),
        ("1–2 שבועות", "שבוע או שבועיים"),
    ],
)
def test_israeli_writing_conventions(text: str, spoken: str) -> None:
    """Day letters (א'-ה'), 24/7, ½ and 1/2, '/חודש' and '1-2 ימים' are said as Israelis
    say them (the library said 'ביום אלף', 'עשרים וארבעה ביולי', 'אחד בפברואר שעה',
    'אחת-יומיים')."""
    assert to_spoken(text) == spoken
