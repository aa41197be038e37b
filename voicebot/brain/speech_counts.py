"""Counts, days of the month and large amounts the way an Israeli says them aloud.

Pre-passes of :func:`voicebot.brain.speech_text.to_spoken` for what ``heb-tts-normalizer``
gets wrong: it rewrites the writer's singular noun after a count of eleven and more
("20 שנה" → "עשרים שנים", "30 יום" → "שלושים ימים"), counts a bare day of the month in
the feminine ("ב-15 לחודש" → "בחמש עשרה"), and reads "1.5 מיליון" as "אחד נקודה חמש
מיליון" and "$1.5M" as "דולר אחד.חמשM". Each pass returns words, no digits.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from voicebot.brain.hebrew_numbers import MAX_SPOKEN_NUMBER, Gender, number_to_words

SINGULAR_COUNT_FROM = 11  # "עשרים שנה", "שלושים יום": from eleven on the noun may stay singular

# Singular nouns Hebrew counts from eleven on, with the gender the number takes.
_SINGULAR_NOUN_GENDER: Final[dict[str, Gender]] = {
    "שנה": "f", "שעה": "f", "דקה": "f", "פעם": "f",
    "יום": "m", "חודש": "m", "שבוע": "m", "שקל": "m", "דולר": "m", "איש": "m",
    "מטר": "m", "קילו": "m", "עובד": "m", "לקוח": "m",
}  # fmt: skip
_NUMBER = r"\d{1,3}(?:,\d{3})+|\d+"
_SINGULAR_COUNT_RE = re.compile(
    rf"(?<![\d.,:/\-–\w])(?:(?P<pre>[בלמוכשה])[-־]?)?(?:(?P<a>{_NUMBER})\s?[-–]\s?)?"
    rf"(?P<n>{_NUMBER})\s+"
    rf"(?P<noun>{'|'.join(_SINGULAR_NOUN_GENDER)})(?![א-ת])"
)
# A day of the month after a preposition: "ב-15 לחודש", "עד 10 לחודש" ("ה-15" is the
# library's). Masculine, as a day of the month and as shekels ("ב-15 לחודש" may be a price).
_DAY_OF_MONTH_RE = re.compile(
    r"(?<![\w\-–])(?P<pre>[בלמ][-־]?|עד |ב?יום )(?P<d>[12]\d|3[01]|[1-9])(?=\s+לחודש(?![א-ת]))"
)
_CURRENCY_WORDS: Final = {"₪": "שקלים", 'ש"ח': "שקלים", "ש״ח": "שקלים", "$": "דולר", "€": "אירו"}
_CUR = r"₪|ש\"ח|ש״ח|\$|€"
_SCALE_WORDS: Final = {
    "מיליון": 1_000_000, "M": 1_000_000, "מיליארד": 1_000_000_000, "אלף": 1000, "K": 1000,
}  # fmt: skip
# "1.5 מיליון ₪", "₪2.75 מיליון", "$1.5M", "250K": an amount with a scale word or letter.
_SCALED_RE = re.compile(
    rf"(?<![\d.,\w])(?:(?P<pre>[בלמוכש])[-־]?)?(?:(?P<cur1>{_CUR})\s?)?"
    r"(?P<n>\d+(?:\.\d+)?)(?:\s?(?P<word>מיליון|מיליארד|אלף)(?![א-ת])|(?P<letter>[MK])(?![A-Za-z]))"
    rf"(?:\s?(?P<cur2>{_CUR}))?"
)


def _attach(prefix: str | None, words: str) -> str:
    return f"{prefix}{words}" if prefix else words


def _singular_count_sub(m: re.Match[str]) -> str:
    n = int(m["n"].replace(",", ""))
    if n < SINGULAR_COUNT_FROM or n > MAX_SPOKEN_NUMBER:
        return m.group(0)
    noun = m["noun"]
    gender = _SINGULAR_NOUN_GENDER[noun]
    words = f"{number_to_words(n, gender)} {noun}"
    if m["a"]:  # "20-30 שנה": "עשרים עד שלושים שנה", "בין עשרים לשלושים שנה"
        low = int(m["a"].replace(",", ""))
        if low > MAX_SPOKEN_NUMBER:
            return m.group(0)
        join = "ל" if m.string[: m.start()].endswith("בין ") else "עד "
        words = f"{number_to_words(low, gender)} {join}{words}"
    return _attach(m["pre"], words)


def _day_of_month_sub(m: re.Match[str]) -> str:
    return m["pre"].rstrip("-־") + number_to_words(int(m["d"]), "m")


def _scaled_words(amount: Decimal, scale_word: str) -> str | None:
    """ "1.5", "מיליון" → "מיליון וחצי"; "2.5" → "שניים וחצי מיליון"; "1.2" → "מיליון
    ומאתיים אלף"; None when the amount is beyond words."""
    scale = _SCALE_WORDS[scale_word]
    word = {"M": "מיליון", "K": "אלף"}.get(scale_word, scale_word)
    whole = int(amount)
    if amount - whole == Decimal("0.5") and whole < 1000:
        if whole == 0:
            return f"חצי {word}"
        if whole == 1:
            return f"{word} וחצי"
        return f"{number_to_words(whole, 'm')} וחצי {word}"
    value = amount * scale
    if value != value.to_integral_value() or value > MAX_SPOKEN_NUMBER:
        return None
    return number_to_words(int(value), "m")


def _scaled_sub(m: re.Match[str]) -> str:
    scale_word = m["word"] or m["letter"]
    if m["cur1"] and m["cur2"]:
        return m.group(0)
    words = _scaled_words(Decimal(m["n"]), scale_word)
    if words is None:
        return m.group(0)
    currency = m["cur1"] or m["cur2"]
    if currency:
        words = f"{words} {_CURRENCY_WORDS[currency]}"
    return _attach(m["pre"], words)


def spoken_counts(text: str) -> str:
    """Large amounts, days of the month and counts before a singular noun, as words."""
    text = _SCALED_RE.sub(_scaled_sub, text)
    text = _DAY_OF_MONTH_RE.sub(_day_of_month_sub, text)
    return _SINGULAR_COUNT_RE.sub(_singular_count_sub, text)
