"""Text written for the ear: numbers, times, dates, prices and phone numbers as Hebrew words.

Owns the rewriting applied to every text before TTS (:func:`to_spoken`) and the way the
agent names a meeting slot (:func:`format_slot_hebrew`, "מחר בעשר בבוקר").

:func:`to_spoken` is the kept library ``heb-tts-normalizer`` (number gender agreement with
the noun, prices with agorot and the currency sign before or after, decimals, ranges,
dotted dates, "ה-2" ordinals, abbreviations) behind a small pre-pass for what it does not
do well on a sales call: phone numbers digit by digit in their written groups with a
pause between them, star codes ("*5287" → "כוכבית חמש שתיים שמונה שבע"), clock times and
time ranges said the way slots are named ("רבע לחמש"), slash dates ("3/12"), dual forms
("2 שעות" → "שעתיים"), halves ("1.5 שעות" → "שעה וחצי"), weekday ordinals ("יום 1" →
"יום ראשון"), weekday letters ("ביום א'" → "ביום ראשון", "א'-ה'"), "24/7", halves
written "½"/"1/2 שעה", prices per period ("₪99/חודש" → "… לחודש"), "1-2 ימים" ("יום או
יומיים"), percentages ("אחוז אחד", "חמישה אחוזים", "עשרים אחוז"), signs ("-5%" → "מינוס
חמישה אחוזים"), a count joined to a second one before the noun ("3 מתוך 5 לקוחות" →
"שלושה מתוך חמישה לקוחות") and day-month dates after "ה-" ("עד ה-15.3"; a bare "15.3"
is a decimal; other dotted dates and their ranges, "ב-1.12", "1.12-5.12", are
:mod:`voicebot.brain.speech_dates`'); a digit run
too long to be a number is read digit by digit. Evening and night hours say so ("ב-22:00"
→ "בעשר בלילה"); hour ranges are the clock's ("10-12 בבוקר", "בשעות 9-17"); abbreviations
are expanded by the library even in a sentence without digits ("ד\"ר" → "דוקטור");
e-mail and web addresses (:mod:`voicebot.brain.speech_addresses`) and large amounts, days
of the month and singular nouns after a count (:mod:`voicebot.brain.speech_counts`) have
passes of their own.
Its output holds no digits, so a second pass changes nothing: every path to TTS goes
through it once and a repeat is harmless.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import date, datetime
from typing import Final

from heb_tts_normalizer import Config, Gender, normalize

from voicebot.brain.hebrew_numbers import TEENS_M, UNITS_M, number_to_words
from voicebot.brain.speech_addresses import spoken_addresses
from voicebot.brain.speech_counts import spoken_counts
from voicebot.brain.speech_dates import spoken_date, spoken_dotted_dates

WEEKDAY_NAMES = ("שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון")  # Monday=0
DIGIT_NAMES = ("אפס", "אחת", "שתיים", "שלוש", "ארבע", "חמש", "שש", "שבע", "שמונה", "תשע")
DAY_ORDINALS = ("ראשון", "שני", "שלישי", "רביעי", "חמישי", "שישי", "שביעי")  # "יום 1".."יום 7"
MORNING_END_HOUR = 12
EVENING_START_HOUR = 18
NEAR_DAYS = 6  # up to this many days ahead a weekday name alone is clear
SPOKEN_CACHE_ENTRIES = 4096  # distinct texts with digits kept rewritten (script lines repeat)

# Nouns the library counts in the wrong gender (masculine plurals in -ות, and singulars it
# puts the number before: "אחת פגישה").
_GENDER_OVERRIDES: Final = {
    "לקוח": Gender.MASC, "לקוחות": Gender.MASC, "דורות": Gender.MASC,
    "חלונות": Gender.MASC, "קולות": Gender.MASC, "רחובות": Gender.MASC,
    "מוסדות": Gender.MASC, "פגישה": Gender.FEM, "שיחה": Gender.FEM,
    "הודעה": Gender.FEM, "עסקה": Gender.FEM,
}  # fmt: skip
_CONFIG: Final = Config(gender_overrides=dict(_GENDER_OVERRIDES))

# Units said in the dual for two ("שעתיים"), and as singular + "וחצי" for one and a half.
_DUAL: Final = {
    "שעות": "שעתיים", "ימים": "יומיים", "חודשים": "חודשיים", "שבועות": "שבועיים",
    "שנים": "שנתיים", "פעמים": "פעמיים", "דקות": "שתי דקות", "שניות": "שתי שניות",
}  # fmt: skip
_SINGULAR: Final = {
    "שעות": "שעה", "ימים": "יום", "חודשים": "חודש", "שבועות": "שבוע", "שנים": "שנה",
    "דקות": "דקה", "שניות": "שנייה",
}  # fmt: skip
_FEMININE_UNITS: Final = frozenset({"שעות", "שנים", "דקות", "שניות", "פעמים"})

_PRE = r"(?:(?P<pre>[בלמוהכש])[-־]?)?"
_PHONE_RE = re.compile(
    r"(?<![\d*])(?:(?P<pre>[בלמו])[-־])?(?:\+972[-\s]?|0)(?:[2-9]\d?)[-\s]?\d{3}[-\s]?\d{4}(?!\d)"
)
_SERVICE_PHONE_RE = re.compile(
    r"(?<![\d*])(?:(?P<pre>[בלמו])[-־])?(?P<number>1-?[78]00-?\d{3}-?\d{3})(?!\d)"
)
_STAR_RE = re.compile(r"\*(?P<code>\d{2,6})(?P<hash>#)?(?!\d)")
_TIME = r"(?P<{h}>[01]?\d|2[0-3]):(?P<{m}>[0-5]\d)"
_TIME_RANGE_RE = re.compile(
    rf"(?<![\d:]){_PRE}{_TIME.format(h='h1', m='m1')}\s?[-–]\s?"
    rf"{_TIME.format(h='h2', m='m2')}(?![\d:])"
)
_TIME_RE = re.compile(rf"(?<![\d:]){_PRE}{_TIME.format(h='h', m='m')}(?![\d:])")
# A part of the day already written after a time ("ב-20:00 בערב"): no second one is added.
_PART_OF_DAY_AFTER_RE = re.compile(
    r"\s*(?:בבוקר|בערב|בלילה|בצהריים|אחה[\"״]צ|אחרי? הצהריים|לפנות בוקר)(?![א-ת])"
)
NIGHT_START_HOUR = 22  # "עשר בלילה" from 22:00; before dawn too
NIGHT_END_HOUR = 5
# "10-12 בבוקר": hours, counted in the feminine as the clock is.
_HOUR_RANGE_RE = re.compile(
    rf"(?<![\d.,:/\w\-–]){_PRE}(?P<a>1[0-2]|0?[1-9])\s?[-–]\s?(?P<b>1[0-2]|0?[1-9])"
    r"(?=\s+(?:בבוקר|בערב|בלילה|בצהריים|אחה[\"״]צ|אחר הצהריים)(?![א-ת]))"
)
# "בין 10-12": said "בין עשר לשתים עשרה", never "בין … עד …".
_BETWEEN_RANGE_RE = re.compile(r"(?<![א-ת])בין (?P<a>\d+)\s?[-–]\s?(?P<b>\d+)(?![\d.,:/])")
# The library glues "ב"/"ל"/"כ" to "הראשון": the article goes ("בראשון בדצמבר").
_ARTICLE_AFTER_PREFIX_RE = re.compile(
    r"(?<![א-ת])(?P<pre>[בלכ])ה(?=(?:ראשון|שני|שלישי|רביעי|חמישי|שישי|שביעי|שמיני|תשיעי|עשירי)"
    r"(?![א-ת]))"
)
_SHEKEL_ABBREVIATION_RE = re.compile(r"(?<![א-ת])(?P<pre>[בוה]?)ש[\"״]ח(?![א-ת])")  # no number
# "בשעות 9-17", "בין השעות 9-17": whole hours of the clock, said in its twelve-hour form.
_HOURS_RANGE_RE = re.compile(
    r"(?<=שעות )(?P<a>[01]?\d|2[0-3])\s?[-–]\s?(?P<b>[01]?\d|2[0-3])(?![\d:.,])"
)
# An abbreviation written with a geresh or gershayim ("ד\"ר", "וכו'"): the library says it.
_ABBREVIATION_RE = re.compile(r"[א-ת][\"״׳'][א-ת]?")
_DATE_RE = re.compile(
    rf"(?<![\d/]){_PRE}(?P<d>\d{{1,2}})/(?P<mo>\d{{1,2}})(?:/(?P<y>\d{{4}}))?(?![\d/])"
)
_AMOUNT = r"\d[\d,]*(?:\.\d+)?"
_CURRENCY = r"₪|ש\"ח|ש״ח|\$|€"
_PRICE_RANGE_RE = re.compile(
    rf"(?<![\d.,])(?:(?P<sign1>{_CURRENCY})\s?(?P<a1>{_AMOUNT})\s?[-–]\s?(?P<b1>{_AMOUNT})"
    rf"|(?P<a2>{_AMOUNT})\s?[-–]\s?(?P<b2>{_AMOUNT})\s?(?P<sign2>{_CURRENCY}))(?![\d.,])"
)
_PERCENT_RANGE_RE = re.compile(
    r"(?<![\d.,])(?P<a>\d+)(?:\.(?P<af>\d+))?%?\s?[-–]\s?(?P<b>\d+)(?:\.(?P<bf>\d+))?\s?%"
)
# A sign written against a number ("-5%", "+3%", "−₪50"), not a range ("5-7") or a prefix
# letter's hyphen ("ב-5").
_SIGN_RE = re.compile(
    r"(?:(?<![\w\-])(?P<pre>[בלמוהכש])[-־]|(?<![\w.,%₪$€)\]\-–−+־])(?<!\d\s))"
    r"(?P<sign>[-−+])(?=[₪$€]?\d)"
)
_SIGN_WORDS: Final = {"-": "מינוס ", "−": "מינוס ", "+": "פלוס "}
# A count, a word joining it to a second count, then the noun both count: "3 מתוך 5 לקוחות".
_JOINED_COUNT_RE = re.compile(
    r"(?<![\d.,:/\-–])(?P<a>\d{1,3})\s+(?P<join>מתוך|או|עד|על|ועד|ל-?|מ-?)\s*"
    r"(?=\d{1,3}\s+(?P<noun>[א-ת]{2,})(?![א-ת]))"
)
# "ה-15.3": a day of the month and a month, said as a date (a bare "15.3" is a decimal).
_DEFINITE_DATE_RE = re.compile(
    r"(?<![\w.])(?P<pre>[בלמוכש]?)ה[-־]?(?P<d>\d{1,2})\.(?P<mo>\d{1,2})(?![\d.]\d)"
)
PERCENT_SINGULAR_FROM = 11  # "עשרים אחוז": from eleven on the noun may stay singular
_PERCENT_RE = re.compile(rf"(?<![\d.,]){_PRE}(?P<n>\d+)(?:\.(?P<frac>\d+))?\s?%")
_UNITS_ALT = "|".join(_DUAL)
_HALF_RE = re.compile(rf"(?<![\d.,]){_PRE}(?P<n>\d+)\.5\s+(?P<unit>{_UNITS_ALT})\b")
_DUAL_RE = re.compile(rf"(?<![\d.,\-–]){_PRE}2\s+(?P<unit>{_UNITS_ALT})\b")
_ONE_OR_TWO_RE = re.compile(rf"(?<![\d.,]){_PRE}1\s?[-–]\s?2\s+(?P<unit>{_UNITS_ALT})\b")
_DAY_ORDINAL_RE = re.compile(r"(?<=יום )(?:ה[-־]?)?(?P<n>[1-7])(?![\d:./,])")
_DIGITS_RE = re.compile(r"\d+")
# Weekdays written as a letter with a geresh ("יום א'", "א'-ה'"); the library said "אלף".
_DAY_LETTERS: Final = {
    "א": "ראשון",
    "ב": "שני",
    "ג": "שלישי",
    "ד": "רביעי",
    "ה": "חמישי",
    "ו": "שישי",
}
_GERESH = "['׳]"
_DAY_LETTER_RANGE_RE = re.compile(
    rf"(?<![א-ת])(?P<a>[א-ו]){_GERESH}\s?[-–]\s?(?P<b>[א-ו]){_GERESH}(?![א-ת])"
)
_DAY_LETTER_RE = re.compile(rf"(?<=יום )(?P<a>[א-ו]){_GERESH}(?![א-ת])")
_ROUND_THE_CLOCK_RE = re.compile(r"(?<![\d/])24/7(?![\d/])")  # "זמינים 24/7"
_HALF_UNITS = "שעה|יום|שנה|חודש|שבוע|דקה|מחיר|קילו|ליטר|כוס"
_HALF_FRACTION_RE = re.compile(rf"(?<![\d/])(?:1/2|½)(?=\s+(?:{_HALF_UNITS})(?![א-ת]))|½")
# "₪99/חודש": a price per period.
_PER_PERIOD_RE = re.compile(
    r"(?<=[\d₪$€%ח])\s?/\s?(?P<unit>חודש|שנה|שעה|יום|שבוע|לילה|אדם|משתמש)(?![א-ת])"
)
_OTHER_SCRIPT_DIGIT_RE = re.compile(r"(?![0-9])\d")  # "٣", "۵", "２": decimal digits not ASCII
MAX_DIGITS_AS_NUMBER = 9  # a longer run (an order number, a glued code) is read digit by digit
# The word after a number, with niqqud ("5 אֲנָשִׁים"): its points hide the noun's gender.
_POINTED_WORD_AFTER_DIGIT_RE = re.compile(
    r"(?<=\d)(?P<gap>\s+)(?P<word>[א-ת\u0591-\u05bd\u05bf-\u05c7]+)"
)
_POINTS_RE = re.compile(r"[\u0591-\u05bd\u05bf-\u05c7]")
# A digit against a Latin letter ("5G", "3D", "B2B"): apart, or the words are glued ("חמשG").
_DIGIT_LATIN_SEAM_RE = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_NEEDS_WORK_RE = re.compile(r"[\d₪$€%]")


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


def spoken_phone(number: str) -> str:
    """Digit by digit, a pause (comma) between the groups as written."""
    groups = re.split(r"[-\s]", number.replace("+", ""))
    return ", ".join(" ".join(DIGIT_NAMES[int(d)] for d in group) for group in groups if group)


def spoken_digits(digits: str) -> str:
    """ "5287" → "חמש שתיים שמונה שבע"."""
    return " ".join(DIGIT_NAMES[int(d)] for d in digits)


def _attach(prefix: str | None, words: str) -> str:
    return f"{prefix}{words}" if prefix else words


def _phone_sub(m: re.Match[str]) -> str:
    return _attach(m["pre"], spoken_phone(m.group(0)[len(m["pre"] or "") :].lstrip("-־")))


def _star_sub(m: re.Match[str]) -> str:
    return f"כוכבית {spoken_digits(m['code'])}" + (" סולמית" if m["hash"] else "")


def _time_range_sub(m: re.Match[str]) -> str:
    start = spoken_clock(int(m["h1"]), int(m["m1"]))
    end = spoken_clock(int(m["h2"]), int(m["m2"]))
    return _attach(m["pre"], f"{start} עד {end}")


def _time_sub(m: re.Match[str]) -> str:
    """A clock time; an evening or night hour says so ("ב-22:00" → "בעשר בלילה"), unless
    the text already does."""
    hour = int(m["h"])
    words = spoken_clock(hour, int(m["m"]))
    if not _PART_OF_DAY_AFTER_RE.match(m.string, m.end()):
        if hour >= NIGHT_START_HOUR or hour < NIGHT_END_HOUR:
            words += " בלילה"
        elif hour >= EVENING_START_HOUR:
            words += " בערב"
    return _attach(m["pre"], words)


def _hours_range_sub(m: re.Match[str]) -> str:
    join = " ל" if m.string[: m.start()].endswith("בין השעות ") else " עד "
    return f"{spoken_clock(int(m['a']), 0)}{join}{spoken_clock(int(m['b']), 0)}"


def _hour_range_sub(m: re.Match[str]) -> str:
    return _attach(m["pre"], f"{number_to_words(int(m['a']))} עד {number_to_words(int(m['b']))}")


def _date_sub(m: re.Match[str]) -> str:
    day, month = int(m["d"]), int(m["mo"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return _attach(m["pre"], spoken_date(day, month, int(m["y"]) if m["y"] else None))


def _percent_words(whole: int, frac: str | None) -> str:
    """A percentage said with its noun: "אחוז אחד", "שני אחוזים", "חמישה אחוזים", "עשרים
    אחוז" (from eleven on the noun stays singular), "אחוז וחצי", "אפס נקודה שלוש אחוז"."""
    if frac == "5":
        if whole == 0:
            return "חצי אחוז"
        if whole == 1:
            return "אחוז וחצי"
        words = f"{number_to_words(whole, 'm')} וחצי"
    elif frac:
        words = f"{number_to_words(whole, 'm')} נקודה {spoken_digits(frac)}"
    elif whole == 1:
        return "אחוז אחד"
    else:
        words = _count_words(whole, "m")
    plural = 2 <= whole < PERCENT_SINGULAR_FROM and not (frac and frac != "5" and whole == 0)
    return f"{words} {'אחוזים' if plural else 'אחוז'}"


def _percent_sub(m: re.Match[str]) -> str:
    return _attach(m["pre"], _percent_words(int(m["n"]), m["frac"]))


def _price_range_sub(m: re.Match[str]) -> str:
    """ "₪100-200" → "מאה עד מאתיים ₪" (the library then says the currency once)."""
    low, high = m["a1"] or m["a2"], m["b1"] or m["b2"]
    sign = m["sign1"] or m["sign2"]
    if "." in low:
        return f"{low}{sign} עד {high}{sign}"
    return f"{number_to_words(int(low.replace(',', '')), 'm')} עד {high} {sign}"


def _percent_range_sub(m: re.Match[str]) -> str:
    """ "5–7%" → "חמישה עד שבעה אחוזים": the noun agrees with the second number.
    "2.5-3.25%" → "שניים וחצי עד שלושה נקודה שתיים חמש אחוז" (after "בין": "…ל…")."""
    if m["af"] or m["bf"]:
        whole, frac = int(m["a"]), m["af"]
        if frac == "5":
            low = "חצי" if whole == 0 else f"{number_to_words(whole, 'm')} וחצי"
        elif frac:
            low = f"{number_to_words(whole, 'm')} נקודה {spoken_digits(frac)}"
        else:
            low = number_to_words(whole, "m")
        join = "ל" if m.string[: m.start()].endswith("בין ") else "עד "
        return f"{low} {join}{_percent_words(int(m['b']), m['bf'])}"
    low = number_to_words(int(m["a"]), "m")
    high = _percent_words(int(m["b"]), None)
    if high == "אחוז אחד":
        high = "אחד אחוז"
    elif high.startswith("שני "):
        high = "שניים " + high.removeprefix("שני ")
    return f"{low} עד {high}"


def _sign_sub(m: re.Match[str]) -> str:
    return _attach(m["pre"], _SIGN_WORDS[m["sign"]])


@functools.lru_cache(maxsize=SPOKEN_CACHE_ENTRIES)
def noun_gender(noun: str) -> str | None:
    """ "m" or "f" for a noun the library counts ("לקוחות" → "m", "פגישות" → "f"), else None."""
    spoken = normalize(f"3 {noun}", _CONFIG)
    if spoken.startswith("שלושה "):
        return "m"
    if spoken.startswith("שלוש "):
        return "f"
    return None


def _joined_count_sub(m: re.Match[str]) -> str:
    """ "3 מתוך 5 לקוחות": the first count takes the gender of the noun the second counts."""
    gender = noun_gender(m["noun"])
    if gender is None:
        return m.group(0)
    words = number_to_words(int(m["a"]), "m" if gender == "m" else "f")
    join = m["join"].rstrip("-")
    glued = join in ("ל", "מ")
    return f"{words} {join}" + ("" if glued else " ")


def _definite_date_sub(m: re.Match[str]) -> str:
    day, month = int(m["d"]), int(m["mo"])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{m['pre']}ה{spoken_date(day, month)}"


def _half_sub(m: re.Match[str]) -> str:
    n, unit = int(m["n"]), m["unit"]
    if n == 0:  # "0.5 שעות": half an hour
        return _attach(m["pre"], f"חצי {_SINGULAR[unit]}")
    if n == 1:
        whole = _SINGULAR[unit]
    elif n == 2:
        whole = _DUAL[unit]
    else:
        gender = "f" if unit in _FEMININE_UNITS else "m"
        whole = f"{_count_words(n, gender)} {unit}"
    return _attach(m["pre"], f"{whole} וחצי")


def _count_words(n: int, gender: str) -> str:
    """A count before its noun: construct forms for two ("שתי", "שני")."""
    if n == 2:
        return "שתי" if gender == "f" else "שני"
    return number_to_words(n, "f" if gender == "f" else "m")


def _dual_sub(m: re.Match[str]) -> str:
    return _attach(m["pre"], _DUAL[m["unit"]])


def _leftover_digits(m: re.Match[str]) -> str:
    digits = m.group(0)
    if len(digits) > MAX_DIGITS_AS_NUMBER:
        return spoken_digits(digits)
    return number_to_words(int(digits))


def _one_or_two_sub(m: re.Match[str]) -> str:
    unit = m["unit"]
    return _attach(m["pre"], f"{_SINGULAR[unit]} או {_DUAL[unit]}")


def _day_letters(text: str) -> str:
    """ "ביום א'" → "ביום ראשון", "א'-ה'" → "ראשון עד חמישי"; other letters are left."""
    if "'" not in text and "׳" not in text:
        return text
    text = _DAY_LETTER_RANGE_RE.sub(
        lambda m: f"{_DAY_LETTERS[m['a']]} עד {_DAY_LETTERS[m['b']]}", text
    )
    return _DAY_LETTER_RE.sub(lambda m: _DAY_LETTERS[m["a"]], text)


def _day_ordinal_sub(m: re.Match[str]) -> str:
    return DAY_ORDINALS[int(m["n"]) - 1]


def to_spoken(text: str) -> str:
    """Rewrite digits and currency signs in Hebrew text into the words TTS should say.

    Phone numbers and star codes go digit by digit; prices (with agorot), times, dates,
    percentages, decimals, ranges and counts become words that agree with their noun; a
    prefix letter ("ב-14:30") is glued to the words; weekday letters ("ביום א'") become
    day names. Applying this twice equals applying it once. Script
    lines repeat on every call, so results are kept in a bounded cache.
    """
    text = spoken_addresses(_day_letters(text))
    if not _NEEDS_WORK_RE.search(text) and "½" not in text and not _ABBREVIATION_RE.search(text):
        return text
    return _rewrite(text)


@functools.lru_cache(maxsize=SPOKEN_CACHE_ENTRIES)
def _rewrite(text: str) -> str:
    # Digits of other scripts count like ASCII ones (agreement, phones, times).
    text = _OTHER_SCRIPT_DIGIT_RE.sub(lambda m: str(unicodedata.decimal(m.group(0))), text)
    text = _POINTED_WORD_AFTER_DIGIT_RE.sub(
        lambda m: m["gap"] + _POINTS_RE.sub("", m["word"]), text
    )
    text = _PHONE_RE.sub(_phone_sub, text)
    text = _SERVICE_PHONE_RE.sub(lambda m: _attach(m["pre"], spoken_phone(m["number"])), text)
    text = _STAR_RE.sub(_star_sub, text)
    text = _SIGN_RE.sub(_sign_sub, text)
    text = spoken_counts(text)
    text = spoken_dotted_dates(text)
    text = _HOUR_RANGE_RE.sub(_hour_range_sub, text)
    text = _HOURS_RANGE_RE.sub(_hours_range_sub, text)
    text = _BETWEEN_RANGE_RE.sub(lambda m: f"בין {m['a']} ל-{m['b']}", text)
    text = _ROUND_THE_CLOCK_RE.sub("עשרים וארבע שבע", text)
    text = _HALF_FRACTION_RE.sub("חצי", text)
    text = _PER_PERIOD_RE.sub(lambda m: f" ל{m['unit']}", text)
    text = _TIME_RANGE_RE.sub(_time_range_sub, text)
    text = _TIME_RE.sub(_time_sub, text)
    text = _DATE_RE.sub(_date_sub, text)
    text = _DEFINITE_DATE_RE.sub(_definite_date_sub, text)
    text = _PRICE_RANGE_RE.sub(_price_range_sub, text)
    text = _PERCENT_RANGE_RE.sub(_percent_range_sub, text)
    text = _PERCENT_RE.sub(_percent_sub, text)
    text = _HALF_RE.sub(_half_sub, text)
    text = _ONE_OR_TWO_RE.sub(_one_or_two_sub, text)
    text = _DUAL_RE.sub(_dual_sub, text)
    text = _DAY_ORDINAL_RE.sub(_day_ordinal_sub, text)
    text = _JOINED_COUNT_RE.sub(_joined_count_sub, text)
    text = _DIGIT_LATIN_SEAM_RE.sub(" ", text)
    text = normalize(text, _CONFIG)
    text = _ARTICLE_AFTER_PREFIX_RE.sub(lambda m: m["pre"], text)
    text = _SHEKEL_ABBREVIATION_RE.sub(lambda m: f"{m['pre']}שקלים", text)
    # Whatever the library left as digits (a model name such as "5G", a run too long to be a
    # number) is still spoken.
    return _DIGITS_RE.sub(_leftover_digits, text)


def format_slot_hebrew(slot: datetime, now: datetime) -> str:
    """Name a meeting slot relative to now: "מחר בעשר בבוקר", "ביום שלישי בשתיים וחצי"."""
    day_text, clock = slot_day_and_clock(slot, now)
    return f"{day_text} {clock}"


def slot_day_and_clock(slot: datetime, now: datetime) -> tuple[str, str]:
    """The two halves of :func:`format_slot_hebrew`: ("מחר", "בעשר בבוקר"), so two slots on
    one day can name the day once."""
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
    return day_text, clock
