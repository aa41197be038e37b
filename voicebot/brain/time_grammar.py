"""The grammar of spoken Hebrew times: lexicons and precompiled patterns, data only.

Read by :mod:`voicebot.brain.timeparse`. Patterns match canonical text (see
:mod:`voicebot.brain.normalize`), so every lexicon entry is passed through
:func:`~voicebot.brain.normalize.fold_finals` here.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Literal

from voicebot.brain.normalize import fold_finals

Precision = Literal["instant", "part_of_day", "day", "week", "month"]
PartOfDay = Literal["morning", "noon", "afternoon", "evening", "night"]

DEFAULT_BUSINESS_HOURS = (time(9, 0), time(18, 0))
# Spans of the parts of the day, used when no clock time is given.
PART_OF_DAY_SPANS: dict[PartOfDay, tuple[time, time]] = {
    "morning": (time(8, 0), time(12, 0)),
    "noon": (time(12, 0), time(14, 0)),
    "afternoon": (time(14, 0), time(18, 0)),
    "evening": (time(18, 0), time(21, 0)),
    "night": (time(20, 0), time(23, 0)),
}
BARE_PM_HOURS = range(1, 8)  # 1–7 without a part of day is afternoon
FEW_MINUTES_MIN = 10  # "עוד כמה דקות"
DAYS_PER_WEEK = 7
SUNDAY_WEEKDAY = 6  # Python weekday number of Sunday

WEEKDAYS: dict[str, int] = {
    fold_finals(name): number
    for name, number in (
        ("ראשון", 6), ("שני", 0), ("שלישי", 1), ("רביעי", 2),
        ("חמישי", 3), ("שישי", 4), ("שבת", 5),
    )
}  # fmt: skip
MONTHS: dict[str, int] = {
    fold_finals(name): number
    for number, names in enumerate(
        (
            ("ינואר",), ("פברואר",), ("מרץ", "מרס"), ("אפריל",), ("מאי",), ("יוני",),
            ("יולי",), ("אוגוסט",), ("ספטמבר",), ("אוקטובר",), ("נובמבר",), ("דצמבר",),
        ),
        start=1,
    )
    for name in names
}  # fmt: skip
RELATIVE_UNITS_MIN: dict[str, int] = {
    fold_finals(k): v
    for k, v in (
        ("דקה", 1), ("דקות", 1), ("שעה", 60), ("שעות", 60), ("שעתיים", 120),
        ("יום", 1440), ("ימים", 1440), ("יומיים", 2880),
        ("שבוע", 10080), ("שבועות", 10080), ("שבועיים", 20160),
    )
}  # fmt: skip
DUAL_UNITS = {fold_finals("שעתיים"), fold_finals("יומיים"), fold_finals("שבועיים")}
MINUTES_PER_DAY = 1440


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(fold_finals(pattern))


_B = r"(?<!\S)"  # token start
_E = r"(?!\S)"  # token end
_UNITS = "|".join(sorted(RELATIVE_UNITS_MIN, key=len, reverse=True))
RELATIVE_RE = re.compile(
    _B
    + fold_finals(r"(?:ב?עוד|בתוך|תוך)\s+(?:(?P<n>\d+)\s+)?(?P<frac>חצי\s+|רבע\s+)?")
    + f"(?P<unit>{_UNITS})"
    + fold_finals(r"(?:\s+ו(?P<plus>חצי|רבע))?")
    + _E
)
FEW_MINUTES_RE = _rx(_B + r"(?:ב?עוד|תוך)\s+כמה\s+דקות" + _E)
NUMERIC_DATE_RE = re.compile(
    r"(?<!\S)(?P<d>\d{1,2})[/.](?P<m>\d{1,2})(?:[/.](?P<y>\d{2,4}))?(?!\S)"
)
MONTH_DATE_RE = _rx(
    _B
    + r"(?P<d>\d{1,2})\s+(?:ה?[בל])(?:(?P<chodesh>חודש)(?P<next>\s+הבא)?|(?P<month>"
    + "|".join(MONTHS)
    + "))"
    + _E
)
DAY_WORD_RE = _rx(_B + r"(?:ו?[בל]?|עד\s+|מ)(?P<word>מחרתיים|מחר|היום|אתמול|שלשום)" + _E)
DAY_WORD_OFFSETS: dict[str, int] = {
    fold_finals(k): v
    for k, v in (("היום", 0), ("מחר", 1), ("מחרתיים", 2), ("אתמול", -1), ("שלשום", -2))
}
# Words that put a weekday, week or month behind us: "ביום שני שעבר", "בשבוע הקודם".
_PAST = r"(?:ש?עבר|ה?קודמ|ה?קודמת|ה?אחרונ|ה?אחרונה)"
_NEXT = r"\s+ה?באה?|\s+(?:ב|ל|של\s+)?שבוע\s+הבא"  # "רביעי הבא", "שבת הבאה", "רביעי בשבוע הבא"
_THIS = r"\s+(?:הזה|הזאת|הקרוב|הקרובה)"  # "רביעי הזה": the coming one, as if bare
# Said bare ("מה עם שלישי בארבע", "אולי רביעי"), these names are the weekday: in a call
# that books meetings they are nothing else.
PLAIN_WEEKDAYS = tuple(fold_finals(name) for name in ("שלישי", "רביעי", "חמישי", "שישי"))
# Bare "ראשון"/"שני" are also "first"/"second", the slot picked by position, and "שבת" is a
# greeting ("שבת שלום"): they name the day only with a clock time, a part of the day or
# "הבא"/"הזה"/"הקרוב" right after them ("שני בעשר", "ראשון בבוקר", "שני הבא"). With the
# article ("הראשון", "השני", "השלישי") every one of them is an ordinal, never a day.
CUED_WEEKDAYS = tuple(fold_finals(name) for name in ("ראשון", "שני", "שבת"))
# What must follow a cued name: a clock time, a part of the day, "הבא"/"הזה"/"הקרוב".
_DAY_CUE = (
    r"(?=\s+(?:(?:ו?[בל]|עד|אחרי|לקראת|סביבות|בסביבות)\s+)?(?:רבע\s+ל\s+)?\d"
    r"|\s+(?:ב?שעה|לשעה)\s+\d"
    r"|\s+(?:ו?[בל])?(?:(?:אחרי|אחר|לפני)\s+ה?)?(?:בוקר|צהריים|ערב|לילה)(?!\S)"
    r"|(?:" + _NEXT + "|" + _THIS + r")(?!\S))"
)
_NAMED_DAY = r"(?:(?:ו?[בל]?|עד\s+)?יום\s+|ו?[בל])(?P<wd>" + "|".join(WEEKDAYS) + ")"
_BARE_DAY = (
    r"(?:עד\s+)?ו?(?P<bare>"
    + "|".join(PLAIN_WEEKDAYS)
    + f"|(?:{'|'.join(CUED_WEEKDAYS)}){_DAY_CUE})"
)
WEEKDAY_RE = _rx(
    rf"{_B}(?:{_NAMED_DAY}|{_BARE_DAY})(?P<next>{_NEXT})?(?:{_THIS})?(?P<past>\s+{_PAST})?{_E}"
)
NEXT_WEEK_RE = _rx(_B + r"(?:ב|ל)?שבוע\s+הבא" + _E)
PAST_WEEK_RE = _rx(_B + r"(?:ו?[בל]|מ)?(?:שבוע\s+" + _PAST + r"|שבוע\s+שעבר)" + _E)
PAST_MONTH_RE = _rx(_B + r"(?:ו?[בל]|מ)?חודש\s+" + _PAST + _E)
# "לפני שעתיים", "לפני 3 ימים", "לפני שבוע": a moment or a day behind us.
PAST_RELATIVE_RE = re.compile(
    _B
    + fold_finals(r"(?:ו?מ?לפני)\s+(?:(?P<n>\d+)\s+)?(?P<frac>חצי\s+|רבע\s+)?")
    + f"(?P<unit>{_UNITS})"
    + _E
)
PARTS: tuple[tuple[re.Pattern[str], PartOfDay, bool], ...] = (
    (_rx(_B + r"(?:ו?[בל])?(?:אחרי|אחר)\s+ה?צהריים" + _E), "afternoon", False),
    (_rx(_B + r"(?:ו?[בל])?לפני\s+ה?צהריים" + _E), "morning", False),
    (_rx(_B + r"הבוקר" + _E), "morning", True),
    (_rx(_B + r"(?:ו?[בל])?בוקר" + _E), "morning", False),
    (_rx(_B + r"(?:ו?[בל]|ה)?צהריים" + _E), "noon", False),
    (_rx(_B + r"הערב" + _E), "evening", True),
    (_rx(_B + r"(?:ו?[בל])?ערב" + _E), "evening", False),
    (_rx(_B + r"הלילה" + _E), "night", True),
    (_rx(_B + r"(?:ו?[בל])?לילה" + _E), "night", False),
)
_H = r"(?P<h>\d{1,2})"
_TRIGGER = r"(?:(?:ו?[בל]|עד|אחרי|לקראת|סביבות|בסביבות|בערך)\s+)?(?:ב?שעה\s+|לשעה\s+)?"
CLOCK_RES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<!\S)(?P<h>\d{1,2})[:.](?P<m>\d{2})(?!\S)"), "hm"),
    (_rx(_B + r"(?:ו?[בל]\s+)?רבע\s+ל\s+" + _H + _E), "quarter_to"),
    (_rx(_B + r"(?:ו?[בל]\s+)?(?P<m>\d{1,2})\s+(?:דקות\s+)?ל\s+" + _H + _E), "minutes_to"),
    (_rx(_B + _TRIGGER + _H + r"\s+ו?רבע" + _E), "quarter_past"),
    (_rx(_B + _TRIGGER + _H + r"\s+וחצי" + _E), "half_past"),
    (_rx(_B + _TRIGGER + _H + r"\s+ו\s+(?P<m>\d{1,2})(?:\s+דקות)?" + _E), "minutes_past"),
    (_rx(_B + r"(?:ו?[בל]|עד|אחרי|לקראת|סביבות|בסביבות)\s+(?:שעה\s+)?" + _H
         + r"(?:\s+(?P<m>[1-5][05]))?(?!\s+(?:דקות|שעות|ימים|אנשים|עובדים))" + _E), "hour"),
    (_rx(_B + r"(?:ב?שעה|לשעה)\s+" + _H + _E), "hour"),
)  # fmt: skip
BARE_HOUR_RE = re.compile(r"^(?:[ובל]\s+)?(?P<h>\d{1,2})$")
