"""Hebrew time expressions ("מחר בעשר", "רבע לשלוש", "בעוד שעתיים") to aware datetimes.

Owns the grammar of spoken times and dates and the rules that make them concrete:

* A bare clock hour 1–7 means 13:00–19:00 and 8–11 means morning: the business-day
  reading ("בעשר" is 10:00, "בחמש" is 17:00). "בבוקר" forces AM, "בצהריים",
  "אחרי הצהריים", "בערב" force PM; "בלילה" is PM for 8–11 and AM for 12–5.
  A 24-hour clock ("14:30", "09:00") is taken as written.
* A clock time with no day that is already past today moves to the next day, and to
  the next business day when ``business_days`` is given ("בעשר" said at 11:00 on a
  Thursday is Sunday 10:00).
* "ביום חמישי" is the next Thursday after today; "יום חמישי הבא" is the Thursday of the
  next calendar week (weeks start on Sunday). "שבוע הבא" is next week from Sunday.
  A weekday said bare is the same day ("מה עם שלישי בארבע", "אולי רביעי"), except
  "ראשון", "שני" (also first/second, a slot picked by position) and "שבת" (also a
  greeting), which name a day only with a clock time, a part of the day or
  "הבא"/"הזה"/"הקרוב" right after them; with the article ("הראשון", "השני", "השלישי")
  they are ordinals. Saturday is parsed as named: whether it is open is the
  calendar's business, not the parser's. "רביעי בעוד שבועיים" is the Wednesday of the
  week the count lands in.
* "בעוד שעתיים" / "בעוד חצי שעה" are exact instants (elapsed time, so DST-correct);
  "עוד שבוע" / "בעוד יומיים" name a day.
* A date with no year ("15/12") is the next such date from today; "ב-3 לחודש" is the
  3rd of this month, or of next month once it has passed.
* A time behind us is never moved forward: "אתמול בעשר", "שלשום", "ביום שני שעבר",
  "בשבוע שעבר", "בחודש שעבר", "לפני שעתיים" and "היום בשמונה" said at noon parse to
  the past moment or span they name, with ``past`` set, so the agent can say that time
  has passed instead of booking another one.

Results are aware datetimes in the given zone; wall-clock times that do not exist on
a DST change day are moved forward by the gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from voicebot.brain.normalize import fold_finals, normalize, words_to_digits
from voicebot.brain.time_grammar import (
    BARE_HOUR_RE,
    BARE_PM_HOURS,
    CLOCK_RES,
    DAY_WORD_OFFSETS,
    DAY_WORD_RE,
    DAYS_PER_WEEK,
    DEFAULT_BUSINESS_HOURS,
    DUAL_UNITS,
    FEW_MINUTES_MIN,
    FEW_MINUTES_RE,
    MINUTES_PER_DAY,
    MONTH_DATE_RE,
    MONTHS,
    NEXT_WEEK_RE,
    NUMERIC_DATE_RE,
    PART_OF_DAY_SPANS,
    PARTS,
    PAST_MONTH_RE,
    PAST_RELATIVE_RE,
    PAST_WEEK_RE,
    RELATIVE_RE,
    RELATIVE_UNITS_MIN,
    WEEKDAY_RE,
    WEEKDAYS,
    PartOfDay,
    Precision,
)


@dataclass(frozen=True, slots=True)
class TimeParse:
    """A spoken time made concrete: an instant, or a span (part of day, day, week)."""

    start: datetime
    end: datetime
    precision: Precision
    part_of_day: PartOfDay | None = None
    past: bool = False  # the whole of it was over before the caller said it

    @property
    def is_instant(self) -> bool:
        return self.precision == "instant"


@dataclass(slots=True)
class _Found:
    day: date | None = None
    week_start: date | None = None
    part: PartOfDay | None = None
    hour: int | None = None
    minute: int = 0
    explicit_24h: bool = False
    instant: datetime | None = None
    month_start: date | None = None
    rough: bool = False  # "בעוד שבועיים": a day counted in weeks, not one the caller named


def at(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """Aware wall-clock time on ``day``; a time inside a DST gap moves forward by the gap."""
    naive = datetime.combine(day, clock)
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz)


def _sunday_index(day: date) -> int:
    return (day.weekday() + 1) % DAYS_PER_WEEK


def _week_sunday(day: date) -> date:
    return day - timedelta(days=_sunday_index(day))


def _last_weekday(today: date, weekday: int) -> date:
    behind = (today.weekday() - weekday) % DAYS_PER_WEEK
    return today - timedelta(days=behind or DAYS_PER_WEEK)


def _next_weekday(today: date, weekday: int, *, next_week: bool) -> date:
    if next_week:
        next_sunday = _week_sunday(today) + timedelta(days=DAYS_PER_WEEK)
        return next_sunday + timedelta(days=(weekday + 1) % DAYS_PER_WEEK)
    ahead = (weekday - today.weekday()) % DAYS_PER_WEEK
    return today + timedelta(days=ahead or DAYS_PER_WEEK)


def _month_day(today: date, day: int, *, skip: int) -> date | None:
    year, month = today.year, today.month
    for step in range(skip, skip + 12):
        y, m = year + (month - 1 + step) // 12, (month - 1 + step) % 12 + 1
        try:
            candidate = date(y, m, day)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
    return None


def _dated(today: date, day: int, month: int, year: int | None) -> date | None:
    try:
        if year is not None:
            return date(year if year >= 100 else 2000 + year, month, day)
        candidate = date(today.year, month, day)
        return candidate if candidate >= today else date(today.year + 1, month, day)
    except ValueError:
        return None


MAX_RELATIVE_MIN = 2 * 366 * 24 * 60  # a relative time further ahead than this is no time


def _take(text: str, match: re.Match[str]) -> str:
    return text[: match.start()] + " " + text[match.end() :]


def _parse_past_relative(text: str, found: _Found, now: datetime) -> str:
    """ "לפני שעתיים" → two hours ago, "לפני 3 ימים" → that day."""
    match = PAST_RELATIVE_RE.search(text)
    if match is None:
        return text
    unit = match["unit"]
    per_unit, count = RELATIVE_UNITS_MIN[unit], float(match["n"] or 1)
    if unit in DUAL_UNITS:
        per_unit, count = per_unit // 2, 2.0 * count
    if match["frac"]:
        count = 0.5 if match["frac"].strip() == fold_finals("חצי") else 0.25
    if not per_unit * count <= MAX_RELATIVE_MIN:
        return _take(text, match)
    minutes = round(per_unit * count)
    if per_unit >= MINUTES_PER_DAY:
        found.day = now.date() - timedelta(minutes=minutes)
    else:
        found.instant = (now.astimezone(UTC) - timedelta(minutes=minutes)).astimezone(now.tzinfo)
    return _take(text, match)


def _parse_relative(text: str, found: _Found, now: datetime) -> str:
    match = RELATIVE_RE.search(text)
    few = FEW_MINUTES_RE.search(text) if match is None else None
    if few is not None:
        found.instant = now + timedelta(minutes=FEW_MINUTES_MIN)
        return _take(text, few)
    if match is None:
        return text
    unit = match["unit"]
    per_unit = RELATIVE_UNITS_MIN[unit]
    count = float(match["n"] or 1)
    if unit in DUAL_UNITS:
        per_unit, count = per_unit // 2, 2.0 * (float(match["n"]) if match["n"] else 1.0)
    if match["frac"]:
        count = 0.5 if match["frac"].strip() == fold_finals("חצי") else 0.25
    if match["plus"]:
        count += 0.5 if match["plus"] == fold_finals("חצי") else 0.25
    if not per_unit * count <= MAX_RELATIVE_MIN:  # "בעוד 100000000000 ימים", or inf
        return _take(text, match)
    minutes = round(per_unit * count)
    if per_unit >= MINUTES_PER_DAY:
        found.day = now.date() + timedelta(minutes=minutes)
        found.rough = per_unit >= DAYS_PER_WEEK * MINUTES_PER_DAY
    else:
        found.instant = (now.astimezone(UTC) + timedelta(minutes=minutes)).astimezone(now.tzinfo)
    return _take(text, match)


def _parse_day(text: str, found: _Found, today: date) -> str:
    if (m := NUMERIC_DATE_RE.search(text)) is not None:
        day, month = int(m["d"]), int(m["m"])
        if 1 <= month <= 12 and not (m.group(0).count(".") == 1 and int(m["m"]) > 12):
            found.day = _dated(today, day, month, int(m["y"]) if m["y"] else None)
            return _take(text, m)
    if (m := MONTH_DATE_RE.search(text)) is not None:
        day = int(m["d"])
        if m["month"]:
            found.day = _dated(today, day, MONTHS[m["month"]], None)
        else:
            found.day = _month_day(today, day, skip=1 if m["next"] else 0)
        return _take(text, m)
    if (m := WEEKDAY_RE.search(text)) is not None:
        weekday = WEEKDAYS[m["wd"] or m["bare"]]
        text = _take(text, m)
        next_week = bool(m["next"])
        if not next_week and (w := NEXT_WEEK_RE.search(text)) is not None:
            next_week, text = True, _take(text, w)  # "בשבוע הבא ביום רביעי"
        if m["past"]:
            found.day = _last_weekday(today, weekday)
        elif found.rough and found.day is not None:
            # "רביעי בעוד שבועיים": that weekday in the week the count lands in, as named.
            found.day = _week_sunday(found.day) + timedelta(days=(weekday + 1) % DAYS_PER_WEEK)
            found.rough = False
        else:
            found.day = _next_weekday(today, weekday, next_week=next_week)
    elif (m := DAY_WORD_RE.search(text)) is not None:
        found.day = today + timedelta(days=DAY_WORD_OFFSETS[m["word"]])
        text = _take(text, m)
    elif (m := NEXT_WEEK_RE.search(text)) is not None:
        found.week_start = today + timedelta(days=DAYS_PER_WEEK - _sunday_index(today))
        text = _take(text, m)
    elif (m := PAST_WEEK_RE.search(text)) is not None:
        found.week_start = today - timedelta(days=_sunday_index(today) + DAYS_PER_WEEK)
        text = _take(text, m)
    elif (m := PAST_MONTH_RE.search(text)) is not None:
        found.month_start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
        text = _take(text, m)
    return text


def _parse_part(text: str, found: _Found, today: date) -> str:
    for pattern, part, means_today in PARTS:
        if (m := pattern.search(text)) is not None:
            found.part = part
            if means_today and found.day is None:
                found.day = today
            return _take(text, m)
    return text


def _parse_clock(text: str, found: _Found) -> None:
    for pattern, kind in CLOCK_RES:
        m = pattern.search(text)
        if m is None:
            continue
        hour = int(m["h"])
        minute = int(m["m"]) if "m" in m.groupdict() and m["m"] else 0
        if kind == "hm":
            found.explicit_24h = hour >= 13 or m.group(0).startswith("0")
        elif kind == "quarter_to":
            hour, minute = hour - 1, 45
        elif kind == "minutes_to":
            if not 1 <= minute <= 30:
                continue
            hour, minute = hour - 1, 60 - minute
        elif kind == "quarter_past":
            minute = 15
        elif kind == "half_past":
            minute = 30
        hour = 12 if hour == 0 and kind in ("quarter_to", "minutes_to") else hour
        if 0 <= hour <= 24 and 0 <= minute <= 59:
            found.hour, found.minute = hour % 24, minute
            return
    m = BARE_HOUR_RE.match(text.strip())
    if found.hour is None and m is not None and 1 <= int(m["h"]) <= 12:
        found.hour = int(m["h"])


def _hour24(hour: int, part: PartOfDay | None, explicit_24h: bool) -> int:
    if explicit_24h or hour >= 13 or hour == 0:
        return hour
    if part == "morning":
        return hour % 12
    if part in ("noon", "afternoon", "evening"):
        return hour if hour == 12 or (part == "noon" and hour >= 11) else hour + 12
    if part == "night":
        return 0 if hour == 12 else hour + 12 if hour >= 6 else hour
    return hour + 12 if hour in BARE_PM_HOURS else hour


def _next_open_day(day: date, business_days: frozenset[int] | None) -> date:
    day += timedelta(days=1)
    if business_days:
        while day.weekday() not in business_days:
            day += timedelta(days=1)
    return day


# "ערב שבת" is Shabbat's eve, Friday evening (not this evening): read as "יום שישי בערב".
_EREV_SHABBAT_RE = re.compile(r"(?<!\S)(ב?)ערב שבת(?!\S)")


def parse_hebrew_time(
    text: str,
    *,
    now: datetime,
    tz: ZoneInfo,
    business_hours: tuple[time, time] = DEFAULT_BUSINESS_HOURS,
    business_days: frozenset[int] | None = None,
) -> TimeParse | None:
    """Find the time a caller means in ``text``; None when it names no time.

    ``now`` may be in any zone; results are in ``tz``. See the module docstring for
    the rules that resolve ambiguous hours and past times.
    """
    now = now.astimezone(tz)
    today = now.date()
    found = _Found()
    canonical = _EREV_SHABBAT_RE.sub(r"\1יום שישי בערב", normalize(text))
    rest = _parse_relative(words_to_digits(canonical), found, now)
    rest = _parse_past_relative(rest, found, now)
    if found.instant is not None:
        return TimeParse(found.instant, found.instant, "instant", past=found.instant < now)
    rest = _parse_day(rest, found, today)
    if found.rough and found.day is not None and business_days:
        # "in two weeks" said on a Saturday means about then: the nearest open day after.
        found.day = _next_open_day(found.day - timedelta(days=1), business_days)
    rest = _parse_part(rest, found, today)
    _parse_clock(rest, found)
    open_start, open_end = business_hours
    named = found.day is not None or found.week_start is not None
    if found.hour is not None:
        clock = time(_hour24(found.hour, found.part, found.explicit_24h), found.minute)
        day = found.day or found.week_start or found.month_start or today
        start = at(day, clock, tz)
        if not named and found.month_start is None and start <= now:
            start = at(_next_open_day(today, business_days), clock, tz)
        return TimeParse(start, start, "instant", found.part, past=start < now)
    if found.part is not None:
        span_start, span_end = PART_OF_DAY_SPANS[found.part]
        day = found.day or found.week_start or today
        if not named and at(day, span_end, tz) <= now:
            day = _next_open_day(today, business_days)
        return _span(at(day, span_start, tz), at(day, span_end, tz), "part_of_day", now, found.part)
    if found.day is not None:
        return _span(at(found.day, open_start, tz), at(found.day, open_end, tz), "day", now)
    if found.week_start is not None:
        last_day = found.week_start + timedelta(days=4)
        return _span(at(found.week_start, open_start, tz), at(last_day, open_end, tz), "week", now)
    if found.month_start is not None:
        next_month = (found.month_start + timedelta(days=31)).replace(day=1)
        last_day = next_month - timedelta(days=1)
        return _span(
            at(found.month_start, open_start, tz), at(last_day, open_end, tz), "month", now
        )
    return None


def _span(
    start: datetime,
    end: datetime,
    precision: Precision,
    now: datetime,
    part: PartOfDay | None = None,
) -> TimeParse:
    """A named span: the whole of it when it is over, else from now on."""
    if end < now:
        return TimeParse(start, end, precision, part, past=True)
    start = max(start, now)
    return TimeParse(start, max(end, start), precision, part)
