"""Text a native speaker reads aloud differently from what TTS was given: each case is a
reading the normaliser got wrong (library or pre-pass) and now says as an Israeli would."""

from __future__ import annotations

import pytest

from voicebot.brain.hebrew_numbers import number_to_words
from voicebot.brain.speech_text import to_spoken

NATIVE_READINGS = [
    # Large amounts: "אחד נקודה חמש מיליון", "דולר אחד.חמשM".
    ("עסקה של 1.5 מיליון ₪", "עסקה של מיליון וחצי שקלים"),
    ("₪1.5 מיליון", "מיליון וחצי שקלים"),
    ("ב-2.5 מיליון", "בשניים וחצי מיליון"),
    ("1.2 מיליון ₪", "מיליון ומאתיים אלף שקלים"),
    ("עולה 1.5 אלף ₪", "עולה אלף וחצי שקלים"),
    ("$1.5M", "מיליון וחצי דולר"),
    ("250K", "מאתיים וחמישים אלף"),
    ("3 אלף", "שלושת אלפים"),
    # A singular noun after eleven and more is the writer's: not "עשרים שנים", "שלושים ימים".
    ("ניסיון של 20 שנה", "ניסיון של עשרים שנה"),
    ("15 שנה", "חמש עשרה שנה"),
    ("30 יום ניסיון", "שלושים יום ניסיון"),
    ("100 שקל", "מאה שקל"),
    ("20-30 שנה", "עשרים עד שלושים שנה"),
    ("בין 20-30 שנה", "בין עשרים לשלושים שנה"),
    # Niqqud on the noun hid its gender: "חמש אֲנָשִׁים".
    ("יש לנו 5 אֲנָשִׁים", "יש לנו חמישה אנשים"),
    # A day of the month is not a weekday: "ביום 3 לחודש" was "ביום שלישי לחודש" (Tuesday).
    ("ביום 3 לחודש", "ביום שלושה לחודש"),
    # A day of the month after a preposition is masculine: not "בחמש עשרה לחודש".
    ("ב-15 לחודש", "בחמישה עשר לחודש"),
    ("עד 10 לחודש", "עד עשרה לחודש"),
    # "ב" swallows the article: not "בהראשון בדצמבר".
    ("ב-1 בדצמבר", "בראשון בדצמבר"),
    ("ב-1.12.2026", "בראשון בדצמבר אלפיים עשרים ושש"),
    # A preposition before day.month with a two-digit month: a date, not "אחת נקודה אחת שתיים".
    ("ב-1.12 יש לנו מבצע", "באחד בדצמבר יש לנו מבצע"),
    ("ב-1.10 וב-2.10", "באחד באוקטובר ובשניים באוקטובר"),
    ("לפני 1.12", "לפני אחד בדצמבר"),
    ("ב-1.10 שקלים", "בשקל אחד ועשר אגורות"),  # an amount stays an amount
    # An evening or night hour says so: "ב-22:00" was "בעשר", heard as ten in the morning.
    ("ב-22:00", "בעשר בלילה"),
    ("ב-20:00", "בשמונה בערב"),
    ("ב-20:00 בערב", "בשמונה בערב"),
    ("ב-21:30 בערב", "בתשע וחצי בערב"),
    # Hour ranges: the clock counts in the feminine; "בין … ל…", never "בין … עד …".
    ("10-12 בבוקר", "עשר עד שתים עשרה בבוקר"),
    ("בין 10-12", "בין עשר לשתים עשרה"),
    ("בין 10-12 אנשים", "בין עשרה לשנים עשר אנשים"),
    ("בשעות 9-17", "בשעות תשע עד חמש"),
    ("בין השעות 9-17", "בין השעות תשע לחמש"),
    # A toll-free number after a prefix letter: not "ל-אחת, …".
    ("התקשרו ל-1-800-800-800", "התקשרו לאחת, שמונה אפס אפס, שמונה אפס אפס, שמונה אפס אפס"),
    # Abbreviations in a sentence without digits were left for the TTS to guess.
    ('ד"ר כהן יחזור אליך', "דוקטור כהן יחזור אליך"),
    ('עו"ד לוי', "עורך דין לוי"),
    ("ספרים, מחברות וכו'", "ספרים, מחברות וכולי"),
    ('המחיר בש"ח', "המחיר בשקלים"),
    ('נתראה אחה"צ', "נתראה אחר הצהריים"),
    # E-mail and web addresses as Israelis read them out.
    ("שלחו ל-info@leadplus.co.il", "שלחו ל-info שטרודל leadplus נקודה co נקודה il"),
    ("כתבו לנו: info@x.co.il.", "כתבו לנו: info שטרודל x נקודה co נקודה il."),
    ("היכנסו ל-www.leadplus.co.il", "היכנסו ל-leadplus נקודה co נקודה il"),
    ("https://leadplus.co.il/yoga-2", "leadplus נקודה co נקודה il סלאש yoga מקף שתיים"),
    ("dana.cohen2@gmail.com", "dana נקודה cohen שתיים שטרודל gmail נקודה com"),
    # Left as they were.
    ("€20 לחודש", "עשרים אירו לחודש"),
    ("נדבר ב-Zoom.", "נדבר ב-Zoom."),
    ("שלום, מה שלומך?", "שלום, מה שלומך?"),
]


@pytest.mark.parametrize(("text", "spoken"), NATIVE_READINGS)
def test_native_reading(text: str, spoken: str) -> None:
    """The text is said as a native speaker reads it aloud."""
    assert to_spoken(text) == spoken


@pytest.mark.parametrize(("text", "spoken"), NATIVE_READINGS)
def test_native_reading_is_final(text: str, spoken: str) -> None:
    """A second pass over the spoken form changes nothing."""
    assert to_spoken(spoken) == spoken


def test_two_million_is_construct() -> None:
    """Two million is "שני מיליון" (was "שניים מיליון")."""
    assert number_to_words(2_750_000, "m") == "שני מיליון ושבע מאות וחמישים אלף"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [("רשת 5G", "רשת חמש G"), ("B2B", "B שתיים B"), ("מ-3D הדפסות", "משלוש D הדפסות")],
)
def test_digit_against_latin_letter(text: str, spoken: str) -> None:
    """A digit written against a Latin letter is a word apart (was "חמשG", "BשתייםB")."""
    assert to_spoken(text) == spoken
