"""At the slots a pick said with a day or time that is not the picked slot's is not booked
as the slot: the day or time said is read back or offered instead."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain import state as st
from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
SUNDAY_NOON = datetime(2026, 11, 29, 12, 0, tzinfo=TZ)
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),  # Sunday to Thursday
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


async def _at_the_slots() -> tuple[RuleBrain, ConversationState, InMemoryBookingTools]:
    tools = InMemoryBookingTools(calendar=CAL, clock=SUNDAY_NOON)
    brain = RuleBrain(tools=tools, calendar=CAL)
    state = ConversationState(lead=LeadContext(lead_id=1, name="דנה", company=None))
    await brain.greet(state)
    for line in ("כן בטח", "אנחנו חמישה", "בעיקר אני עונה בעצמי"):
        await brain.respond(state, line, now=SUNDAY_NOON)
    assert state.stage == st.PROPOSE
    assert [s.date() for s in state.proposed_slots] == [SUNDAY_NOON.date()] * 2
    return brain, state, tools


@pytest.mark.parametrize(
    ("line", "day"),
    [
        ("ראשון בבוקר", date(2026, 12, 6)),  # Sunday morning, not today's first slot
        ("שני בבוקר", date(2026, 11, 30)),  # Monday morning, not today's second slot
        ("ראשון אחרי הצהריים", date(2026, 12, 6)),
    ],
)
async def test_weekday_with_a_part_of_day_is_that_day(line: str, day: date) -> None:
    """Sunday noon, today's slots offered: "ראשון בבוקר" books nothing today; the slots
    offered next are on the day named."""
    brain, state, tools = await _at_the_slots()
    await brain.respond(state, line, now=SUNDAY_NOON)
    assert tools.meetings == []
    assert {s.date() for s in state.proposed_slots} == {day}


async def test_first_at_another_hour_is_not_the_first_slot() -> None:
    """ "הראשון בחמש" with slots at 13:00 and 15:00: not booked at 13:00; five o'clock
    is read back for a yes."""
    brain, state, tools = await _at_the_slots()
    reply = await brain.respond(state, "הראשון בחמש", now=SUNDAY_NOON)
    assert tools.meetings == []
    assert state.stage == st.CONFIRM and state.pending_slot is not None
    assert state.pending_slot.hour == 17, reply.text


async def test_pick_said_with_its_own_time_is_booked() -> None:
    """ "השני, של שלוש" names the second slot's own time: booked at once, as before."""
    brain, state, tools = await _at_the_slots()
    second = state.proposed_slots[1]
    await brain.respond(state, "השני, בשלוש", now=SUNDAY_NOON)
    assert [m.start for m in tools.meetings] == [second]
