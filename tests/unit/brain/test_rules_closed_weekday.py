"""A meeting asked for on a weekday the business does not work names that day."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from voicebot.brain import phrases as say
from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
THURSDAY_EVENING = datetime(2026, 12, 3, 19, 0, tzinfo=TZ)
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),  # Sunday to Thursday
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


async def test_friday_is_named() -> None:
    """ "מחר בעשר" asked on Thursday evening: "ביום שישי לא קובעים פגישות." (was "ביום
    הזה", which a lead hears as a riddle), then the next working day's slots."""
    tools = InMemoryBookingTools(calendar=CAL, clock=THURSDAY_EVENING)
    brain = RuleBrain(tools=tools, calendar=CAL)
    state = ConversationState(lead=LeadContext(lead_id=1, name="דנה", company=None))
    await brain.greet(state)
    await brain.respond(state, "שלום", now=THURSDAY_EVENING)
    reply = await brain.respond(state, "אפשר לקבוע פגישה מחר בעשר", now=THURSDAY_EVENING)
    assert reply.text.startswith("ביום שישי לא קובעים פגישות. יש מקום ביום ראשון")
    assert tools.meetings == []


def test_named_reasons_and_unknown_day_unchanged() -> None:
    """A holiday keeps its name; without a day the phrase stays "ביום הזה"."""
    assert say.closed_day("Shabbat", date(2026, 12, 5)) == "בשבת לא קובעים פגישות."
    assert say.closed_day(None) == "ביום הזה לא קובעים פגישות."
    assert say.no_calls_on(None, date(2026, 12, 4)) == "ביום שישי אנחנו לא מתקשרים"


async def test_bare_shabbat_at_the_slots_is_refused_and_sunday_offered() -> None:
    """ "מה עם שבת בעשר" at the slots on Sunday noon names Saturday, which the calendar
    refuses ("בשבת לא קובעים פגישות."), then next Sunday's slots; nothing is booked."""
    now = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)
    tools = InMemoryBookingTools(calendar=CAL, clock=now)
    brain = RuleBrain(tools=tools, calendar=CAL)
    state = ConversationState(lead=LeadContext(lead_id=1, name="דנה", company=None))
    await brain.greet(state)
    for line in ("כן בטח", "אנחנו חמישה", "בעיקר אני עונה בעצמי"):
        await brain.respond(state, line, now=now)
    reply = await brain.respond(state, "מה עם שבת בעשר", now=now)
    assert reply.text.startswith("בשבת לא קובעים פגישות. יש מקום ביום ראשון")
    assert {slot.date() for slot in state.proposed_slots} == {date(2026, 12, 6)}
    assert tools.meetings == []
