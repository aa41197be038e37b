"""The LLM system prompt carries the script, the lead, the local clock and what was offered."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.prompt import build_system_prompt
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)
NOW_UTC = datetime(2030, 3, 5, 20, 30, tzinfo=UTC)  # 22:30 in Jerusalem, a Tuesday


def test_prompt_names_script_lead_and_local_time() -> None:
    """Agent, company, offer, questions, objections, lead and the Jerusalem clock appear."""
    script = AgentScript.default()
    state = ConversationState(lead=LeadContext(lead_id=1, name="דני", company="מספרת דני"))
    prompt = build_system_prompt(script, state, now=NOW_UTC, calendar=CAL)
    for fact in (
        script.agent_name,
        script.company,
        script.offer,
        *script.qualifying_questions,
        script.objections.price,
        "דני",
        "מספרת דני",
        "יום שלישי, 2030-03-05 22:30",
        "Asia/Jerusalem",
        "בין 09:00 ל-18:00",
        "ראשון, שני, שלישי, רביעי, חמישי",
        "2030-03-05T10:00:00+02:00",
    ):
        assert fact in prompt, fact
    assert "הוצעו" not in prompt


def test_prompt_lists_slots_already_offered() -> None:
    """Slots offered earlier in the call are named, in ISO and as spoken."""
    slot = datetime(2030, 3, 6, 10, 0, tzinfo=TZ)
    state = ConversationState(proposed_slots=[slot])
    prompt = build_system_prompt(AgentScript.default(), state, now=NOW_UTC, calendar=CAL)
    assert "2030-03-06T10:00:00+02:00 (מחר בעשר בבוקר)" in prompt
    assert "לא ידועים" in prompt
