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
