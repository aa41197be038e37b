"""Hebrew number words, both directions: integers to spoken words, words to integers.

Owns the lexicon only (feminine counting forms, masculine forms, tens, hundreds,
thousands); text-level rewriting lives in :mod:`voicebot.brain.normalize` and
:mod:`voicebot.brain.speech_text`.
"""

from __future__ import annotations

from typing import Literal

Gender = Literal["f", "m"]

UNITS_F = ("אפס", "אחת", "שתיים", "שלוש", "ארבע", "חמש", "שש", "שבע", "שמונה", "תשע")
UNITS_M = ("אפס", "אחד", "שניים", "שלושה", "ארבעה", "חמישה", "שישה", "שבעה", "שמונה", "תשעה")
TEENS_F = (
    "עשר", "אחת עשרה", "שתים עשרה", "שלוש עשרה", "ארבע עשרה",
    "חמש עשרה", "שש עשרה", "שבע עשרה", "שמונה עשרה", "תשע עשרה",
)  # fmt: skip
TEENS_M = (
    "עשרה", "אחד עשר", "שנים עשר", "שלושה עשר", "ארבעה עשר",
    "חמישה עשר", "שישה עשר", "שבעה עשר", "שמונה עשר", "תשעה עשר",
)  # fmt: skip
TENS = ("", "", "עשרים", "שלושים", "ארבעים", "חמישים", "שישים", "שבעים", "שמונים", "תשעים")
HUNDREDS = (
    "", "מאה", "מאתיים", "שלוש מאות", "ארבע מאות",
    "חמש מאות", "שש מאות", "שבע מאות", "שמונה מאות", "תשע מאות",
)  # fmt: skip
THOUSANDS = (
    "", "אלף", "אלפיים", "שלושת אלפים", "ארבעת אלפים", "חמשת אלפים",
    "ששת אלפים", "שבעת אלפים", "שמונת אלפים", "תשעת אלפים", "עשרת אלפים",
)  # fmt: skip

MAX_SPOKEN_NUMBER = 999_999_999


def _join(parts: list[str]) -> str:
    """Join number parts the spoken way: "ו" before the last part."""
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return " ".join(parts[:-1]) + " ו" + parts[-1]


def _below_hundred(n: int, gender: Gender) -> list[str]:
    units = UNITS_F if gender == "f" else UNITS_M
    teens = TEENS_F if gender == "f" else TEENS_M
    if n == 0:
        return []
    if n < 10:
        return [units[n]]
    if n < 20:
        return [teens[n - 10]]
    tens, unit = divmod(n, 10)
    return [TENS[tens]] + ([units[unit]] if unit else [])


def _below_thousand(n: int, gender: Gender) -> list[str]:
    hundreds, rest = divmod(n, 100)
    return ([HUNDREDS[hundreds]] if hundreds else []) + _below_hundred(rest, gender)


def number_to_words(n: int, gender: Gender = "f") -> str:
    """Spell a non-negative integer in Hebrew ("250" → "מאתיים וחמישים").

    Feminine is the default counting gender of spoken Hebrew (clock hours, bare numbers).
    Numbers above :data:`MAX_SPOKEN_NUMBER` or below zero are returned as digits.
    """
    if n < 0 or n > MAX_SPOKEN_NUMBER:
        return str(n)
    if n == 0:
        return UNITS_F[0]
    parts: list[str] = []
    millions, rest = divmod(n, 1_000_000)
    if millions:
        if millions == 1:
            parts.append("מיליון")
        else:  # construct form for two: "שני מיליון"
            count = "שני" if millions == 2 else number_to_words(millions, "m")
            parts.append(f"{count} מיליון")
    thousands, rest = divmod(rest, 1000)
    if thousands:
        if thousands <= 10:
            parts.append(THOUSANDS[thousands])
        else:
            parts.append(f"{number_to_words(thousands, 'm')} אלף")
    parts.extend(_below_thousand(rest, gender))
    return _join(parts)


def _build_word_values() -> dict[str, int]:
    values: dict[str, int] = {}
    for table in (UNITS_F, UNITS_M):
        for value, word in enumerate(table):
            values[word] = value
    values.update({"שתים": 2, "שנים": 2, "שש": 6, "שישה": 6, "ששה": 6, "שלש": 3})
    values.update({"עשר": 10, "עשרה": 10})
    for value, word in enumerate(TENS):
        if word:
            values[word] = value * 10
    values["מאה"] = 100
    return values


# Words that parse to a value on their own; teens are unit + "עשר(ה)".
WORD_VALUES: dict[str, int] = _build_word_values()
TEEN_SUFFIXES = frozenset({"עשר", "עשרה"})
