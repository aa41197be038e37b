"""What the rule-based agent says: short phone-register Hebrew, data and tiny builders.

Owns every fixed sentence of :class:`~voicebot.brain.rules.RuleBrain`. Sentences
avoid gendered second-person forms (the agent does not know whom it called) and
use first-person past or plural forms, which are the same for a male or female agent.
"""

from __future__ import annotations

from datetime import date, datetime

from voicebot.brain.script import AgentScript
from voicebot.brain.speech_text import WEEKDAY_NAMES, format_slot_hebrew, slot_day_and_clock

ASK_PERMISSION = "זה זמן טוב לדבר דקה?"
ASK_CALLBACK_TIME = "אין בעיה. מתי נוח שנחזור?"
ASK_CALLBACK_AGAIN = "מתי נוח שנחזור? למשל מחר בבוקר, או אחרי הצהריים."
ASK_OPEN_TIME = "אז מתי כן נוח? יום ושעה, ונבדוק."
DIDNT_HEAR = "סליחה, לא שמעתי טוב."
REPEAT = "בטח, אחזור על זה."
HOLD_ON = "בטח, אני מחכה."
HELLO_BACK = "שלום!"
PITCH_WITHOUT_OFFER = "את כל הפרטים ייתן נציג שלנו בשיחה קצרה."
GLAD_TO_BOOK = "בשמחה."
SIMPLE_PERMISSION = "רק כדי לוודא: אפשר לדבר עכשיו, כן או לא?"
LINE_UNCLEAR_BYE = "נראה שהקו לא ממש ברור. ננסה שוב בהמשך, יום טוב!"
CHECK_IN = "הלו? שומעים אותי?"
SILENCE_BYE = "נראה שהקו נפל. ננסה שוב בהמשך, יום טוב!"
DNC_BYE = "סליחה על ההפרעה. הסרנו את המספר, ולא נתקשר יותר. יום טוב."
WRONG_NUMBER_BYE = "אה, סליחה על הטעות! יום טוב."
TRANSFER = "בשמחה, רק רגע, מעבירים לנציג."
GOODBYE = "תודה רבה, יום טוב!"
NOT_INTERESTED_BYE = "בסדר גמור, תודה על הזמן ויום טוב!"
NO_SLOTS = "כרגע אין זמן פנוי בשבועיים הקרובים. נחזור כשיתפנה מקום, יום טוב!"
CONFLICT = "אופס, השעה הזאת בדיוק נתפסה."
OUTSIDE_HOURS = "בשעה הזאת לא קובעים פגישות."
TIME_PASSED = "הזמן הזה כבר עבר."
CLOSED_DAY = "ביום הזה לא קובעים פגישות."
NONE_IN_RANGE = "אז אין מקום פנוי."
NO_CALLS_THEN = "בשעה הזאת אנחנו לא מתקשרים"
ON_CLOSED_DAY = {
    "Shabbat": "בשבת",
    "Rosh Hashanah": "בראש השנה",
    "Yom Kippur": "ביום כיפור",
    "Sukkot": "בסוכות",
    "Simchat Torah / Shemini Atzeret": "בשמחת תורה",
    "Pesach": "בפסח",
    "Seventh day of Pesach": "בשביעי של פסח",
    "Shavuot": "בשבועות",
    "Remembrance Day": "ביום הזיכרון",
    "Independence Day": "ביום העצמאות",
}
"""A closed day by its calendar name (:func:`~voicebot.scheduling.closed_reason`) as said
after "on": "ביום כיפור". A name not listed is "ביום הזה"."""


def on_closed_day(reason: str | None, day: date | None = None) -> str:
    """ "On <that day>" in Hebrew for a calendar's closing reason; a day closed for no named
    reason is said by its weekday ("ביום שישי") when ``day`` is given, else "ביום הזה"."""
    fallback = f"ביום {WEEKDAY_NAMES[day.weekday()]}" if day is not None else "ביום הזה"
    if reason is None:
        return fallback
    return ON_CLOSED_DAY.get(reason) or next(
        (said for name, said in ON_CLOSED_DAY.items() if reason.startswith(name)), fallback
    )


def closed_day(reason: str | None, day: date | None = None) -> str:
    """No meetings that day, saying which day ("ביום שישי לא קובעים פגישות.")."""
    return f"{on_closed_day(reason, day)} לא קובעים פגישות."


def no_calls_on(reason: str | None, day: date | None = None) -> str:
    """No calls that day ("בשבת אנחנו לא מתקשרים"), to lead in a moved callback."""
    return f"{on_closed_day(reason, day)} אנחנו לא מתקשרים"


def ask_meeting(script: AgentScript) -> str:
    """The meeting the script is for ("שיעור ניסיון"), never another product's consultant."""
    return f"שווה לקבוע {script.meeting_purpose}, בלי שום התחייבות?"


def simple_meeting(script: AgentScript) -> str:
    return f"רק כן או לא: לקבוע {script.meeting_purpose}?"


def slot(when: datetime, now: datetime) -> str:
    return format_slot_hebrew(when, now)


def two_slots(first: datetime, second: datetime, now: datetime) -> str:
    """ "מחר בתשע בבוקר, או באחת עשרה בבוקר": a day shared by both slots is said once
    (not "ביום ראשון, שישה בדצמבר, בתשע…, או ביום ראשון, שישה בדצמבר, באחת עשרה…")."""
    day1, clock1 = slot_day_and_clock(first, now)
    day2, clock2 = slot_day_and_clock(second, now)
    if day1 == day2:
        return f"{day1} {clock1}, או {clock2}"
    return f"{day1} {clock1}, או {day2} {clock2}"


def offer_slots(slots: list[datetime], now: datetime) -> str:
    if len(slots) == 1:
        return f"יש מקום {slot(slots[0], now)}. מתאים?"
    return f"יש מקום {two_slots(slots[0], slots[1], now)}. מה מתאים יותר?"


def which_slot(slots: list[datetime], now: datetime) -> str:
    return f"מעולה. {two_slots(slots[0], slots[1], now)}?"


def confirm_slot(when: datetime, now: datetime) -> str:
    return f"רק לוודא: {slot(when, now)}, נכון?"


def simple_slot(when: datetime, now: datetime) -> str:
    return f"אפשר פשוט לקבוע {slot(when, now)}? כן או לא?"


def simple_callback(when: datetime, now: datetime) -> str:
    return f"לחזור {slot(when, now)}, בסדר? כן או לא?"


def booked(when: datetime, now: datetime, script: AgentScript) -> str:
    return f"מעולה, קבענו {slot(when, now)}, {script.meeting_purpose}. תודה ויום טוב!"


def callback_bye(when: datetime, now: datetime, *, moved_because: str = "") -> str:
    """The goodbye promising a callback; ``moved_because`` ("בשבת אנחנו לא מתקשרים") says
    why it is not at the time asked."""
    if moved_because:
        return f"{moved_because}, אז נחזור {slot(when, now)}. תודה ויום טוב!"
    return f"בסדר גמור, נחזור {slot(when, now)}. תודה ויום טוב!"


def introduce(script: AgentScript) -> str:
    return script.introduction()


def pitch(script: AgentScript, *, opener: str = "מעולה,") -> str:
    if script.offer is None:
        return f"{opener} {PITCH_WITHOUT_OFFER}"
    return f"{opener} בקצרה: {script.offer}"
