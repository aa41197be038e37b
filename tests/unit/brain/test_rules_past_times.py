"""A time behind us ("אתמול בעשר", "שלשום", "בשבוע שעבר") is never booked or moved to a
future day: the agent says that time has passed and offers the nearest open slots (for a
callback it asks again when to call)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain import state as st
from voicebot.brain.base import ConversationState, LeadContext, Reply
from voicebot.brain.intents import detect_intent
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.phrases import TIME_PASSED
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar
from voicebot.brain.timeparse import parse_hebrew_time

TZ = ZoneInfo("Asia/Jerusalem")
TUESDAY = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


def _t(d: int, h: int = 9, mi: int = 0) -> datetime:
    return datetime(2025, 3, d, h, mi, tzinfo=TZ)


@pytest.mark.parametrize(
    ("text", "start", "end", "precision"),
    [
        ("אתמול בעשר", _t(10, 10), _t(10, 10), "instant"),
        ("אתמול", _t(10, 9), _t(10, 18), "day"),
        ("מאתמול בבוקר", _t(10, 8), _t(10, 12), "part_of_day"),
        ("שלשום בשלוש", _t(9, 15), _t(9, 15), "instant"),
        ("ביום שני שעבר", _t(10, 9), _t(10, 18), "day"),
        ("יום ראשון האחרון בעשר", _t(9, 10), _t(9, 10), "instant"),
        ("בשבוע שעבר", _t(2, 9), _t(6, 18), "week"),
        ("בשבוע הקודם", _t(2, 9), _t(6, 18), "week"),
        (
            "בחודש שעבר",
            datetime(2025, 2, 1, 9, tzinfo=TZ),
            datetime(2025, 2, 28, 18, tzinfo=TZ),
            "month",
        ),
        ("לפני שעתיים", _t(11, 7), _t(11, 7), "instant"),
        ("לפני 3 ימים", _t(8, 9), _t(8, 18), "day"),
        ("היום בשמונה", _t(11, 8), _t(11, 8), "instant"),
    ],
)
def test_past_expressions_stay_in_the_past(
    text: str, start: datetime, end: datetime, precision: str
) -> None:
    """A day or moment behind us parses to itself, marked past, never to a future day."""
    parsed = parse_hebrew_time(text, now=TUESDAY, tz=TZ)
    assert parsed is not None
    assert (parsed.start, parsed.end, parsed.precision, parsed.past) == (
        start,
        end,
        precision,
        True,
    )


@pytest.mark.parametrize(
    "text", ["מחר בעשר", "בעשר", "ביום שני", "שבוע הבא", "ממחר", "לפני הצהריים"]
)
def test_future_expressions_are_not_past(text: str) -> None:
    """Times ahead, and "לפני הצהריים" (a part of the day, not "ago"), are not past."""
    parsed = parse_hebrew_time(text, now=TUESDAY, tz=TZ)
    assert parsed is not None and not parsed.past
    assert parsed.end >= TUESDAY


def test_a_past_day_mentioned_in_passing_is_no_time_proposal() -> None:
    """ "דיברנו אתמול" after the greeting is not a callback request for yesterday."""
    result = detect_intent(
        "דיברנו אתמול", now=TUESDAY, tz=TZ, expecting="yes_no", moment="greeting"
    )
    assert result.intent != "propose_time"


async def _talk(*lines: str) -> tuple[list[Reply], ConversationState, Any]:
    tools = InMemoryBookingTools(calendar=CAL, clock=TUESDAY)
    brain = RuleBrain(tools=tools, calendar=CAL)
    state = ConversationState(lead=LeadContext(lead_id=7, name="דני", company=None))
    replies = [await brain.greet(state)]
    for line in lines:
        replies.append(await brain.respond(state, line, now=TUESDAY))
    for reply in replies:
        print(reply.intent, "|", reply.text)
    return replies, state, tools


@pytest.mark.parametrize("line", ["אתמול בעשר", "אולי שלשום בשתיים", "בשבוע שעבר", "ביום שני שעבר"])
async def test_past_time_for_a_meeting_gets_the_nearest_slots(line: str) -> None:
    """Slots on the table, the caller names a past time: "הזמן הזה כבר עבר." and the
    nearest open slots, nothing booked, nothing to confirm."""
    replies, state, tools = await _talk("כמה זה עולה", line)
    last = replies[-1]
    assert last.text.startswith(TIME_PASSED) and "יש מקום" in last.text
    assert "רק לוודא" not in last.text and not last.end_call and not tools.meetings
    assert state.stage == st.PROPOSE and state.pending_slot is None
    assert state.proposed_slots and all(s > TUESDAY for s in state.proposed_slots)


@pytest.mark.parametrize("line", ["אפשר לקבוע פגישה אתמול בעשר", "תקבעי לי פגישה שלשום"])
async def test_booking_request_for_a_past_time_is_not_booked(line: str) -> None:
    """ "אפשר לקבוע פגישה אתמול בעשר" right after the greeting: no meeting tomorrow at ten,
    the agent says the time passed and offers open slots."""
    replies, state, tools = await _talk(line)
    last = replies[-1]
    assert last.intent == "book_meeting"
    assert last.text.startswith(TIME_PASSED) and "יש מקום" in last.text
    assert not tools.meetings and state.stage == st.PROPOSE
    assert all(s > TUESDAY for s in state.proposed_slots)


async def test_past_callback_time_is_asked_again() -> None:
    """Asked when to call back, "אתמול בערב" schedules nothing and asks again."""
    replies, state, tools = await _talk("אני עסוק עכשיו", "אתמול בערב")
    last = replies[-1]
    assert last.text.startswith(TIME_PASSED) and not last.end_call
    assert not tools.callbacks and state.stage == st.CALLBACK
