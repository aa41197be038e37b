"""A time on a closed day (Yom Kippur, Shabbat) or outside hours is answered at once, in
plain Hebrew: nearest open slots for a meeting, the nearest calling time for a callback;
the agent never asks to confirm ("רק לוודא") a time it cannot keep."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain import state as st
from voicebot.brain.base import ConversationState, LeadContext, Reply
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
YOM_KIPPUR_EVE = datetime(2027, 10, 10, 9, 0, tzinfo=TZ)  # Sunday; Yom Kippur is Monday 11/10
FRIDAY = datetime(2027, 10, 29, 9, 0, tzinfo=TZ)  # an ordinary Friday; Shabbat is 30/10
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3, 4}),  # Sunday-Friday: the calendar closes Shabbat
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


async def _talk(now: datetime, *lines: str) -> tuple[list[Reply], ConversationState, Any]:
    tools = InMemoryBookingTools(calendar=CAL, clock=now)
    brain = RuleBrain(tools=tools, calendar=CAL)
    state = ConversationState(lead=LeadContext(lead_id=7, name="דני", company=None))
    replies = [await brain.greet(state)]
    for line in lines:
        replies.append(await brain.respond(state, line, now=now))
    for reply in replies:
        print(reply.intent, "|", reply.text)
    return replies, state, tools


def _local_days(slots: list[datetime]) -> set[int]:
    return {s.astimezone(TZ).day for s in slots}


@pytest.mark.parametrize(
    ("now", "line", "closed_day", "said"),
    [
        (YOM_KIPPUR_EVE, "מחר בעשר", 11, "ביום כיפור לא קובעים פגישות."),
        (YOM_KIPPUR_EVE, "אולי מחר בשתיים", 11, "ביום כיפור לא קובעים פגישות."),
        (FRIDAY, "מחר בעשר", 30, "בשבת לא קובעים פגישות."),
        (FRIDAY, "ביום שבת בשתיים", 30, "בשבת לא קובעים פגישות."),
    ],
)
async def test_meeting_time_on_a_closed_day_gets_open_slots_at_once(
    now: datetime, line: str, closed_day: int, said: str
) -> None:
    """Offered slots, the caller names a time on Yom Kippur or Shabbat: the next reply
    names the day as closed and offers open slots (no "רק לוודא", nothing booked)."""
    replies, state, tools = await _talk(now, "כמה זה עולה", line)
    last = replies[-1]
    assert replies[-2].text.count("יש מקום") == 1  # the first proposal
    assert "רק לוודא" not in last.text and not last.end_call and not tools.meetings
    assert last.text.startswith(said) and "יש מקום" in last.text
    assert "אין מקום פנוי" not in last.text
    assert state.stage == st.PROPOSE and state.pending_slot is None
    assert state.proposed_slots and closed_day not in _local_days(state.proposed_slots)
    assert all(s > now for s in state.proposed_slots)


async def test_meeting_on_a_friday_afternoon_is_answered_with_open_hours() -> None:
    """On a Friday, "היום בארבע" is past the Friday cutoff: the agent says so and offers
    open times instead of asking to confirm it."""
    replies, state, _ = await _talk(FRIDAY, "כמה זה עולה", "היום בארבע")
    last = replies[-1]
    assert "רק לוודא" not in last.text
    assert last.text.startswith("בשעה הזאת לא קובעים פגישות.") and "יש מקום" in last.text
    assert state.stage == st.PROPOSE
    for slot in state.proposed_slots:
        assert slot.astimezone(TZ).weekday() != 5  # never Shabbat


async def test_an_open_time_is_still_confirmed() -> None:
    """A free time on an open day that was not offered is confirmed, as before."""
    replies, state, _ = await _talk(YOM_KIPPUR_EVE, "כמה זה עולה", "ביום שלישי בארבע")
    assert replies[-1].text.startswith("רק לוודא:")
    assert state.stage == st.CONFIRM
    assert state.pending_slot == datetime(2027, 10, 12, 16, 0, tzinfo=TZ)


@pytest.mark.parametrize(
    ("now", "line", "expected", "said"),
    [
        (
            YOM_KIPPUR_EVE,
            "תתקשרו אליי מחר בעשר",
            datetime(2027, 10, 12, 9, 0, tzinfo=TZ),
            "ביום כיפור אנחנו לא מתקשרים, אז נחזור ביום שלישי בתשע בבוקר.",
        ),
        (
            FRIDAY,
            "תתקשרו אליי ביום שבת",
            datetime(2027, 10, 31, 9, 0, tzinfo=TZ),
            "בשבת אנחנו לא מתקשרים, אז נחזור ביום ראשון בתשע בבוקר.",
        ),
        (
            FRIDAY,
            "תחזרו אליי היום בחמש",
            datetime(2027, 10, 31, 9, 0, tzinfo=TZ),
            "בשעה הזאת אנחנו לא מתקשרים, אז נחזור ביום ראשון בתשע בבוקר.",
        ),
    ],
)
async def test_callback_on_a_closed_day_says_why_and_when(
    now: datetime, line: str, expected: datetime, said: str
) -> None:
    """A callback asked for on Yom Kippur, Shabbat or a Friday afternoon is stored for the
    nearest calling time and the goodbye says why it moved and when we will call."""
    replies, _, tools = await _talk(now, line)
    assert replies[-1].end_call and tools.callbacks == [expected]
    assert said in replies[-1].text


async def test_simple_callback_question_never_offers_a_holiday() -> None:
    """On the eve of Yom Kippur, the yes/no callback question offers Tuesday (not
    "מחר", which is Yom Kippur), and a "כן" stores that time."""
    replies, _, tools = await _talk(YOM_KIPPUR_EVE, "לא עכשיו", "אממ", "אממ", "כן")
    question = replies[-2].text
    assert "מחר" not in question and "ביום שלישי" in question, question
    assert tools.callbacks == [datetime(2027, 10, 12, 10, 0, tzinfo=TZ)]
