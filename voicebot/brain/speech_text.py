"""Text written for the ear: numbers, times, dates, prices and phone numbers as Hebrew words.

Owns the rewriting applied to every reply before TTS (:func:`to_spoken`) and the way
the agent names a meeting slot (:func:`format_slot_hebrew`, "מחר בעשר בבוקר").
"""

from __future__ import annotations

import re
from datetime import date, datetime

from voicebot.brain.hebrew_numbers import TEENS_M, UNITS_M, number_to_words

MONTH_NAMES = (
    "ינואר", "פברואר", "מרץ", "אפריל", "מאי", "יוני",
    "יולי", "אוגוסט", "ספטמבר", "אוקטובר", "נובמבר", "דצמבר",
)  # fmt: skip
WEEKDAY_NAMES = ("שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון")  # Monday=0
DIGIT_NAMES = ("אפס", "אחת", "שתיים", "שלוש", "ארבע", "חמש", "שש", "שבע", "שמונה", "תשע")
MORNING_END_HOUR = 12
EVENING_START_HOUR = 18
NEAR_DAYS = 6  # up to this many days ahead a weekday name alone is clear

_PHONE_RE = re.compile(
    r"(?<![\d])(?:(?P<pre>[בלמו])-)?(?:\+972[-\s]?|0)(?:[2-9]\d?)[-\s]?\d{3}[-\s]?\d{4}(?!\d)"
)
_PRICE_RE = re.compile(
    r"(?:(?P<pre>[בלמו])-?)?(?:₪\s?(?P<a>\d[\d,]*)|(?P<b>\d[\d,]*)\s?(?:₪|ש\"ח|ש״ח|שקלים|שקל))"
)
_TIME_RE = re.compile(
    r"(?<![\d:])(?:(?P<pre>[בלמו])-?)?(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)(?![\d:])"
)
_DATE_RE = re.compile(
    r"(?<![\d/])(?:(?P<pre>[בלמו])-?)?(?P<d>\d{1,2})/(?P<m>\d{1,2})(?:/(?P<y>\d{4}))?(?![\d/])"
)
_PERCENT_RE = re.compile(r"(\d+)\s?%")
_NUMBER_RE = re.compile(r"(?<![\d])(?:(?P<pre>[בלמוה])-)?(?P<n>\d[\d,]*)(?![\d])")


def _masc_minutes(minutes: int) -> str:
    return number_to_words(minutes, "m") if minutes >= 20 else (UNITS_M + TEENS_M)[minutes]


def spoken_clock(hour: int, minute: int) -> str:
    """Clock time the way Israelis say it: 14:30 → "שתיים וחצי", 16:45 → "רבע לחמש"."""
    h12 = hour % 12 or 12
    next12 = h12 % 12 + 1
    name = number_to_words(h12)
    if minute == 0:
        return name
    if minute == 15:
        return f"{name} ורבע"
    if minute == 30:
        return f"{name} וחצי"
    if minute == 45:
        return f"רבע ל{number_to_words(next12)}"
    if minute > 30 and minute % 5 == 0:
        return f"{_masc_minutes(60 - minute)} ל{number_to_words(next12)}"
    if minute % 5 == 0:
        return f"{name} ו{_masc_minutes(minute)}"
    return f"{name} ו{number_to_words(minute)} דקות"


def part_of_day_suffix(hour: int) -> str:
    """ " בבוקר"/" בערב" where a bare hour would be misheard; empty for 13:00–17:59."""
    if hour < MORNING_END_HOUR:
        return " בבוקר"
    if hour == MORNING_END_HOUR:
        return " בצהריים"
    if hour >= EVENING_START_HOUR:
        return " בערב"
    return ""


def spoken_date(day: int, month: int, year: int | None = None) -> str:
    """3/12 → "שלושה בדצמבר" (day of month in the masculine, as spoken)."""
    text = f"{number_to_words(day, 'm')} ב{MONTH_NAMES[month - 1]}"
    return text if year is None else f"{text} {number_to_words(year)}"


def spoken_price(amount: int) -> str:
    """250 → "מאתיים וחמישים שקלים"."""
    if amount == 1:
        return "שקל אחד"
    if amount == 2:
        return "שני שקלים"
    return f"{number_to_words(amount, 'm')} שקלים"


def spoken_phone(number: str) -> str:
    """Digit by digit, a pause (comma) between the groups as written."""
    groups = re.split(r"[-\s]", number.replace("+", ""))
    return ", ".join(" ".join(DIGIT_NAMES[int(d)] for d in group) for group in groups if group)


def _attach(prefix: str | None, words: str) -> str:
    return f"{prefix}{words}" if prefix else words


def _date_sub(m: re.Match[str]) -> str:
    day, month = int(m["d"]), int(m["m"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return _attach(m["pre"], spoken_date(day, month, int(m["y"]) if m["y"] else None))


def to_spoken(text: str) -> str:
    """Rewrite digits in Hebrew text into words TTS reads correctly.

    Phone numbers go digit by digit; prices, times, dates, percentages and plain
    numbers become words; a prefix letter ("ב-14:30") is glued to the words.
    """
    if not any(ch.isdigit() for ch in text) and "₪" not in text:
        return text
    text = _PHONE_RE.sub(
        lambda m: _attach(m["pre"], spoken_phone(m.group(0)[len(m["pre"] or "") :].lstrip("-"))),
        text,
    )
    text = _PRICE_RE.sub(
        lambda m: _attach(m["pre"], spoken_price(int((m["a"] or m["b"]).replace(",", "")))), text
    )
    text = _TIME_RE.sub(lambda m: _attach(m["pre"], spoken_clock(int(m["h"]), int(m["m"]))), text)
    text = _DATE_RE.sub(_date_sub, text)
    text = _PERCENT_RE.sub(lambda m: f"{number_to_words(int(m[1]))} אחוז", text)
    return _NUMBER_RE.sub(
        lambda m: _attach(m["pre"], number_to_words(int(m["n"].replace(",", "")))), text
    )


def format_slot_hebrew(slot: datetime, now: datetime) -> str:
    """Name a meeting slot relative to now: "מחר בעשר בבוקר", "ביום שלישי בשתיים וחצי"."""
    local = slot.astimezone(now.tzinfo)
    today: date = now.date()
    clock = f"ב{spoken_clock(local.hour, local.minute)}{part_of_day_suffix(local.hour)}"
    days_ahead = (local.date() - today).days
    if days_ahead == 0:
        day_text = "היום"
    elif days_ahead == 1:
        day_text = "מחר"
    elif 1 < days_ahead <= NEAR_DAYS:
        day_text = f"ביום {WEEKDAY_NAMES[local.weekday()]}"
    else:
        day_text = f"ביום {WEEKDAY_NAMES[local.weekday()]}, {spoken_date(local.day, local.month)},"
    return f"{day_text} {clock}"
