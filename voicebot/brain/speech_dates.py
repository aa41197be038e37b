"""Dotted dates ("1.12", "1.12.26", "1.12-5.12") said as dates, not as decimals.

A pre-pass of :func:`voicebot.brain.speech_text.to_spoken`. Israelis write day.month, which
is also how a decimal is written, so a dotted pair is a date only where the text says so:

* a preposition or "עד"/"מאז"/"לפני"/"אחרי"/"החל מ" before it and a two-digit month
  ("ב-1.12", "עד 01.12"; "ב-2.5" stays two and a half);
* a date word before it, whatever the month ("בתאריך 3.4", "ביום ראשון 1.12");
* a range of two dates with two-digit months or a year ("1.12-5.12", "בין 1.12 ל-5.12",
  "1.12.26–5.12.26"), said "אחד עד חמישה בדצמבר" when the month is shared;
* a date with a two-digit month listed after one ("ב-1.12, 2.12 ו-3.12", "ב-1.12 או
  2.12");
* never before an amount's unit or sign ("ב-1.10 שקלים", "1.12-5.12 ₪", "1.12%").

A bare "1.12" stays a decimal; "ה-15.3" (the day, with the article) is a date of
:mod:`voicebot.brain.speech_text`, and a single date with its year ("ב-1.12.2026") the
library's, which reads it right; a range's year of two digits is this century's. Each pass
returns words, no digits; a sentence's final period after a date is punctuation.
"""

from __future__ import annotations

import re
from typing import Final

from voicebot.brain.hebrew_numbers import number_to_words

MONTH_NAMES = (
    "ינואר", "פברואר", "מרץ", "אפריל", "מאי", "יוני",
    "יולי", "אוגוסט", "ספטמבר", "אוקטובר", "נובמבר", "דצמבר",
)  # fmt: skip
CENTURY = 2000  # "1.12.26" is 2026

_DAY = r"[12]\d|3[01]|0?[1-9]"
_MONTH = r"1[0-2]|0?[1-9]"
_YEAR = r"\d{4}|\d{2}"


def _date(i: str = "", *, year: bool = False) -> str:
    written = rf"(?P<d{i}>{_DAY})\.(?P<m{i}>{_MONTH})"
    return rf"{written}(?:\.(?P<y{i}>{_YEAR}))?" if year else written


# What may not precede a date: a word or number it belongs to, a currency sign, a sign.
_NOT_BEFORE = r"(?<![\w.,₪$€\-–/:])"
# What ends a date: no more digits (a period then a digit is a longer number), and no
# amount's unit (a word in -ות after it is a counted noun: "ב-1.12 שעות").
_END = (
    r"(?!\d|\.\d|\s?(?:%|₪|\$|€|ש[\"״]ח|אחוז|מיליון|אלף|שקל|דולר|אירו)"
    r"|\s?[א-ת]*ות(?![א-ת]))"
)
_PREFIX = r"(?:(?P<pre>ו?[בלמ]|מה|ה)[-־]?)?"
_WEEKDAYS = "ראשון|שני|שלישי|רביעי|חמישי|שישי|שבת"
# Words after which a dotted pair can only be a date.
_CONTEXT = rf"(?:[בהלמ]|מה|וב|ול|ומ)?תארי(?:ך|כים)|(?:ב|ה|ו|וב)?יום (?:{_WEEKDAYS}),?|בין התאריכים"

# "1.12-5.12", "בין 1.12-5.12", "בתאריכים 1.12–5.12", "1.12.26-5.12.26".
_RANGE_RE: Final = re.compile(
    rf"{_NOT_BEFORE}(?:(?P<ctx>{_CONTEXT})\s+|(?P<between>בין)\s+)?{_PREFIX}"
    rf"{_date('1', year=True)}\s?[-–]\s?(?:ה[-־]?)?{_date('2', year=True)}{_END}"
)
# "1.12 עד 5.12", "בין 1.12 ל-5.12": the first of two dates joined by words (the second
# is a date by its preposition, below).
_FIRST_OF_TWO_RE: Final = re.compile(
    rf"{_NOT_BEFORE}(?P<lead>(?:בין|מ|מה|ה)[-־\s]?)?{_date()}"
    rf"(?=\s+(?:ו?עד|ו?ל[-־]?)\s?(?:ה[-־]?)?(?:{_DAY})\.(?P<m2>{_MONTH}){_END})"
)
# "בתאריך 3.4", "ביום ראשון 1.12": a date word, then a date of any month.
_IN_CONTEXT_RE: Final = re.compile(rf"{_NOT_BEFORE}(?P<ctx>{_CONTEXT})\s+{_PREFIX}{_date()}{_END}")
# "ב-1.12", "עד 01.12": a preposition, then day.month with a two-digit month.
_AFTER_PREPOSITION_RE: Final = re.compile(
    rf"(?<![\w.])(?:(?P<pre>ו?[בלמ])[-־]?|(?P<word>ו?(?:עד|מאז|לפני|אחרי)|החל מ-?)\s?)"
    rf"{_date()}{_END}"
)
# "ב-1.12, 2.12 ו-3.12": a date listed right after a date said, with a two-digit month.
_LISTED_RE: Final = re.compile(
    rf"(?P<month>(?<![א-ת])ב(?:{'|'.join(MONTH_NAMES)}))"
    rf"(?P<sep>,\s?|,?\s(?:ו[-־]?|או\s))(?P<pre>[בל][-־]?)?{_date()}{_END}"
)
LIST_MAX_DATES = 12  # dates said one after another in one list


def spoken_date(day: int, month: int, year: int | None = None) -> str:
    """3/12 → "שלושה בדצמבר" (day of month in the masculine, as spoken)."""
    text = f"{number_to_words(day, 'm')} ב{MONTH_NAMES[month - 1]}"
    return text if year is None else f"{text} {number_to_words(year)}"


def spoken_dotted_dates(text: str) -> str:
    """Every dotted date the text marks as one, in words (see the module docstring)."""
    if "." not in text:
        return text
    text = _RANGE_RE.sub(_range_sub, text)
    text = _FIRST_OF_TWO_RE.sub(_first_of_two_sub, text)
    text = _IN_CONTEXT_RE.sub(_in_context_sub, text)
    text = _AFTER_PREPOSITION_RE.sub(_after_preposition_sub, text)
    for _ in range(LIST_MAX_DATES):
        listed = _LISTED_RE.sub(_listed_sub, text)
        if listed == text:
            break
        text = listed
    return text


def _year(written: str | None) -> int | None:
    if written is None:
        return None
    return int(written) + (CENTURY if len(written) == 2 else 0)


def _two_digit_month(written: str) -> bool:
    return len(written) == 2


def _range_sub(m: re.Match[str]) -> str:
    y1, y2 = _year(m["y1"]), _year(m["y2"])
    dated = m["ctx"] or y1 or y2 or (_two_digit_month(m["m1"]) and _two_digit_month(m["m2"]))
    if not dated:
        return m.group(0)
    d1, m1, d2, m2 = int(m["d1"]), int(m["m1"]), int(m["d2"]), int(m["m2"])
    join = "ל" if m["between"] or (m["ctx"] or "").startswith("בין") else "עד "
    if m1 == m2 and (y1 is None or y1 == y2):
        # One month (and year): "אחד עד חמישה בדצמבר".
        first = number_to_words(d1, "m")
        words = f"{first} {join}{spoken_date(d2, m2, y2)}"
    else:
        words = f"{spoken_date(d1, m1, y1)} {join}{spoken_date(d2, m2, y2)}"
    lead = f"{m['ctx']} " if m["ctx"] else ("בין " if m["between"] else "")
    return f"{lead}{m['pre'] or ''}{words}"


def _first_of_two_sub(m: re.Match[str]) -> str:
    if not (_two_digit_month(m["m"]) and _two_digit_month(m["m2"])):
        return m.group(0)
    lead = (m["lead"] or "").rstrip("-־")
    if lead == "בין":
        lead = "בין "
    return f"{lead}{spoken_date(int(m['d']), int(m['m']))}"


def _in_context_sub(m: re.Match[str]) -> str:
    return f"{m['ctx']} {m['pre'] or ''}{spoken_date(int(m['d']), int(m['m']))}"


def _listed_sub(m: re.Match[str]) -> str:
    if not _two_digit_month(m["m"]):
        return m.group(0)
    sep = m["sep"].rstrip("-־")
    pre = (m["pre"] or "").rstrip("-־")
    return f"{m['month']}{sep}{pre}{spoken_date(int(m['d']), int(m['m']))}"


def _after_preposition_sub(m: re.Match[str]) -> str:
    if not _two_digit_month(m["m"]):
        return m.group(0)
    if m["pre"]:
        lead = m["pre"]
    elif m["word"].endswith(("מ", "-")):
        lead = m["word"].rstrip("-")
    else:
        lead = f"{m['word']} "
    return f"{lead}{spoken_date(int(m['d']), int(m['m']))}"
