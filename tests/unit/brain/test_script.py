"""The agent script: versioned schema, safe templates, and no borrowed product facts."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from voicebot.brain.base import ConversationState
from voicebot.brain.prompt import build_system_prompt
from voicebot.brain.script import (
    HUMAN_FOLLOWUP_OFFER,
    HUMAN_FOLLOWUP_PRICE,
    TEMPLATE_FIELDS,
    AgentScript,
    TemplateError,
    render_template,
    template_fields,
)
from voicebot.brain.slots import BusinessCalendar

YOGA = AgentScript(agent_name="מאיה", company="סטודיו שאנטי", offer="יש לנו שיעורי יוגה לצוותים.")


def test_version_defaults_to_one_and_others_are_refused() -> None:
    """A script without a version is version 1; an unknown version is refused."""
    assert AgentScript().version == 1
    assert AgentScript.model_validate({"version": 1}).version == 1
    with pytest.raises(ValidationError):
        AgentScript.model_validate({"version": 2})


@pytest.mark.parametrize(
    "template",
    ["{agent.x}", "{hello:>1000000000000}", "{0}", "{}", "שלום {", "}", "{hello!r}", "{Agent}"],
)
def test_unsafe_templates_are_refused(template: str) -> None:
    """Only {field} names from the allow-list pass: no attributes, specs, indexes, lone braces."""
    with pytest.raises(TemplateError):
        template_fields(template, TEMPLATE_FIELDS["greeting"])


def test_template_renders_without_format_machinery() -> None:
    """Placeholders are filled by name and doubled braces are literal."""
    template = "{hello}, כאן {agent} {{לא שדה}}"
    assert template_fields(template, TEMPLATE_FIELDS["greeting"]) == {"hello", "agent"}
    assert render_template(template, {"hello": "היי", "agent": "מאיה"}) == "היי, כאן מאיה {לא שדה}"


def test_voicemail_may_not_use_hello() -> None:
    """Each template has its own allow-list: {hello} belongs to the greeting."""
    with pytest.raises(ValidationError):
        AgentScript(voicemail="{hello}, כאן {agent}")


def test_partial_script_borrows_nothing_from_the_built_in_product() -> None:
    """Left-out offer, price and voicemail become a person following up, never ליד פלוס."""
    bare = AgentScript(agent_name="מאיה")
    assert bare.offer_text() == HUMAN_FOLLOWUP_OFFER
    assert bare.price_answer() == HUMAN_FOLLOWUP_PRICE
    assert bare.render_greeting(None) == "היי, כאן מאיה. זה זמן טוב לדבר דקה?"
    voicemail = YOGA.render_voicemail()
    assert "מסטודיו שאנטי" in voicemail and "ליד פלוס" not in voicemail
    assert YOGA.price_answer() == HUMAN_FOLLOWUP_PRICE


def test_built_in_script_keeps_its_product() -> None:
    """The built-in script still speaks its own product, price and voicemail."""
    default = AgentScript.default()
    assert "199" in default.price_answer()
    assert default.render_voicemail().startswith("היי, כאן נועה מליד פלוס.")
    assert default.render_greeting("דנה") == "היי דנה, כאן נועה מליד פלוס. זה זמן טוב לדבר דקה?"


def test_llm_prompt_of_a_partial_script_forbids_inventing_a_price() -> None:
    """The LLM prompt of the yoga script names no built-in product or price and tells the
    model to hand price questions to a person."""
    tz = ZoneInfo("Asia/Jerusalem")
    prompt = build_system_prompt(
        YOGA,
        ConversationState(),
        now=datetime(2026, 11, 29, 10, 0, tzinfo=tz),
        calendar=BusinessCalendar(
            tz=tz,
            business_days=frozenset({6, 0, 1, 2, 3}),
            day_start=time(9, 0),
            day_end=time(18, 0),
            meeting_min=30,
        ),
    )
    assert "סטודיו שאנטי" in prompt and "שיעורי יוגה" in prompt
    assert "199" not in prompt and "ליד פלוס" not in prompt
    assert HUMAN_FOLLOWUP_PRICE in prompt


async def test_rule_brain_speaks_script_lines_in_spoken_form() -> None:
    """Greeting and price answer written with digits reach TTS as words, once."""
    from voicebot.brain.memory_tools import InMemoryBookingTools
    from voicebot.brain.rules import RuleBrain

    tz = ZoneInfo("Asia/Jerusalem")
    now = datetime(2026, 11, 29, 10, 0, tzinfo=tz)
    calendar = BusinessCalendar(
        tz=tz,
        business_days=frozenset({6, 0, 1, 2, 3}),
        day_start=time(9, 0),
        day_end=time(18, 0),
        meeting_min=30,
    )
    script = YOGA.model_copy(
        update={
            "greeting": "{hello}, כאן {agent} מ{company}, עם 20% הנחה לשבועיים. זה זמן טוב?",
            "objections": YOGA.objections.model_copy(
                update={"price": "שיעור עולה 49.90 ₪, וכרטיסייה של 10 שיעורים ₪400."}
            ),
        }
    )
    brain = RuleBrain(
        tools=InMemoryBookingTools(calendar=calendar, clock=now), calendar=calendar, script=script
    )
    state = ConversationState()
    greeting = await brain.greet(state)
    assert "עם עשרים אחוז הנחה" in greeting.text
    reply = await brain.respond(state, "כמה זה עולה?", now=now)
    assert "ארבעים ותשעה שקלים ותשעים אגורות" in reply.text
    assert "עשרה שיעורים" in reply.text and "ארבע מאות שקלים" in reply.text
    assert not any(ch.isdigit() or ch in "₪%" for ch in greeting.text + reply.text)
