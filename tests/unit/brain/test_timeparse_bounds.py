"""Relative times too far away to mean anything are no time, never a crash."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.base import ConversationState
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar
from voicebot.brain.timeparse import parse_hebrew_time

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)
CAL = BusinessCalendar(
    tz=TZ, business_days=frozenset({6, 0, 1, 2, 3}), day_start=time(9), day_end=time(18),
    meeting_min=30,
)  # fmt: skip
FAR = [
    "בעוד 100000000000 ימים",  # beyond timedelta: OverflowError
    "בעוד 5000 שנים",  # beyond year 9999
    "בעוד 99999999999999999999 דקות",
    "בעוד " + "1" * 400 + " דקות",  # a float count of infinity
]


@pytest.mark.parametrize("text", FAR)
def test_far_relative_time_is_no_time(text: str) -> None:
    """A relative time past any horizon parses as no time instead of raising."""
    assert parse_hebrew_time(text, now=NOW, tz=TZ) is None


@pytest.mark.parametrize("text", FAR)
async def test_far_meeting_request_gets_an_answer(text: str) -> None:
    """The rule brain answers "אפשר לקבוע פגישה <far away>" (it crashed the turn: a 500 on
    the text API, a dead reply on a call)."""
    tools = InMemoryBookingTools(calendar=CAL, clock=NOW)
    brain = RuleBrain(tools=tools, calendar=CAL)
    state = ConversationState()
    await brain.greet(state)
    reply = await brain.respond(state, f"אפשר לקבוע פגישה {text}", now=NOW)
    assert reply.text
    assert not tools.meetings
