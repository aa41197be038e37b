"""LLMBrain against the OpenAI simulator through the real openai client: streaming, tools,
argument validation, cancellation and the rule-brain fallback."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping, Sequence
from contextlib import aclosing
from datetime import datetime
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from voicebot.brain import phrases as say
from voicebot.brain import state as st
from voicebot.brain.base import ChatTurn, ConversationState, LeadContext, Reply, Sentence
from voicebot.brain.llm import LLMBrain
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar
from voicebot.brain.speech_text import to_spoken
from voicebot.metrics import Metrics
from voicebot.providers.openai_llm import OpenAILanguageModel
from voicebot.testing.provider_sim import (
    ProviderSim,
    Rule,
    ScriptedResponder,
    SimConfig,
    SimReply,
    SimToolCall,
)

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2030, 3, 5, 12, 0, tzinfo=TZ)  # Tuesday noon
TOMORROW_10 = datetime(2030, 3, 6, 10, 0, tzinfo=TZ)
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),
    day_start=clock(9, 0),
    day_end=clock(18, 0),
    meeting_min=30,
)
BOOKED_TEXT = "מעולה, קבענו למחר בעשר. תודה ויום טוב!"
FIRST_SENTENCE_TIMEOUT_S = 0.4
"""The hang case's deadline for the model's first sentence (short, so the test is quick)."""
ROOMY_FIRST_SENTENCE_TIMEOUT_S = 10.0
"""Every other test's: a tool round trip on a loaded machine can take longer than 0.4 s, and
such a test is about what the model said, not about the deadline (it was flaky at 0.4 s)."""


@pytest.fixture(autouse=True)
def _captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Log events go to a capture, not to the stderr an earlier test's app configured."""
    with capture_logs() as logs:
        yield logs


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=5)) as running:
        yield running


@pytest.fixture
async def llm(sim: ProviderSim) -> AsyncIterator[OpenAILanguageModel]:
    model = OpenAILanguageModel(sim.endpoint("llm", timeout_s=3.0), first_token_timeout_s=2.0)
    yield model
    await model.aclose()


@pytest.fixture
def tools() -> InMemoryBookingTools:
    return InMemoryBookingTools(calendar=CAL, clock=NOW)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def _brain(
    llm: OpenAILanguageModel, tools: InMemoryBookingTools, metrics: Metrics, timeout_s: float
) -> LLMBrain:
    return LLMBrain(
        llm=llm,
        fallback=RuleBrain(tools=tools, calendar=CAL),
        tools=tools,
        calendar=CAL,
        metrics=metrics,
        first_sentence_timeout_s=timeout_s,
    )


@pytest.fixture
def brain(llm: OpenAILanguageModel, tools: InMemoryBookingTools, metrics: Metrics) -> LLMBrain:
    return _brain(llm, tools, metrics, ROOMY_FIRST_SENTENCE_TIMEOUT_S)


def _state(stage: str = st.PERMISSION) -> ConversationState:
    greeting = AgentScript.default().render_greeting("דני")
    return ConversationState(
        stage=stage,
        lead=LeadContext(lead_id=7, name="דני", company="מספרת דני"),
        history=[ChatTurn("assistant", greeting)],
    )


def _tool_results(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in messages if m.get("role") == "tool"]


def _fallbacks(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "voicebot_provider_errors_total", {"stage": "llm", "kind": f"fallback_{reason}"}
    )
    return value or 0.0


class Recorder:
    """A responder that plays scripted replies in order and keeps every request's messages."""

    def __init__(self, *replies: SimReply) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict[str, Any]]] = []

    def __call__(self, messages: Sequence[dict[str, Any]]) -> SimReply:
        self.requests.append(list(messages))
        return self.replies.pop(0) if self.replies else SimReply(text="בסדר גמור.")


async def test_tool_call_books_the_agreed_time_and_ends(
    sim: ProviderSim, brain: LLMBrain, tools: InMemoryBookingTools
) -> None:
    """book_meeting with an agreed ISO time stores that meeting; the reply confirms and ends."""
    sim.responder = ScriptedResponder(
        [Rule("כן מתאים", tool=SimToolCall("book_meeting", {"start": "2030-03-06T10:00:00"}))],
        after_tool_text=BOOKED_TEXT,
    )
    state = _state()
    reply = await brain.respond(state, "כן מתאים", now=NOW)
    assert [m.start for m in tools.meetings] == [TOMORROW_10]
    assert reply.text == BOOKED_TEXT
    assert [a.kind for a in reply.actions] == ["book_meeting", "end_call"]
    assert reply.actions[0].data == {"meeting_id": 1, "start": TOMORROW_10.isoformat()}
    assert reply.end_call and not reply.transfer
    assert (state.stage, state.outcome, state.booked_meeting_id) == (st.ENDED, "booked", 1)
    assert [t.role for t in state.history] == ["assistant", "user", "assistant"]


async def test_proposed_slots_reach_the_model_and_the_rule_brain_can_continue(
    sim: ProviderSim, brain: LLMBrain, tools: InMemoryBookingTools, metrics: Metrics
) -> None:
    """propose_slots' result goes back to the model; after an LLM outage the rule brain books
    the first slot the model offered, because the LLM turn left the state in 'propose'."""
    recorder = Recorder(
        SimReply(tool_calls=(SimToolCall("propose_slots", {}),)),
        SimReply(text="יש מקום היום בשתיים, או מחר בעשר בבוקר. מה מתאים יותר?"),
    )
    sim.responder = recorder
    state = _state()
    first = await brain.respond(state, "כן, אפשר לקבוע", now=NOW)
    assert first.text.startswith("יש מקום")
    [result] = _tool_results(recorder.requests[1])
    assert result["ok"] is True
    assert [s["start"] for s in result["slots"]] == [s.isoformat() for s in state.proposed_slots]
    assert state.stage == st.PROPOSE and len(state.proposed_slots) == 2
    sim.config.llm.error_rate = 1.0
    second = await brain.respond(state, "הראשון מתאים", now=NOW)
    assert [m.start for m in tools.meetings] == [state.proposed_slots[0]]
    assert "book_meeting" in [a.kind for a in second.actions]
    assert _fallbacks(metrics, "provider_error") == 1


@pytest.mark.parametrize(
    ("tool", "arguments", "error"),
    [
        ("book_meeting", {"start": "מחר בעשר"}, "invalid_arguments"),
        ("book_meeting", {"start": 1899999999}, "invalid_arguments"),
        ("book_meeting", {"start": "2030-03-04T10:00:00+02:00"}, "in_the_past"),
        ("book_meeting", {"start": "2030-03-09T10:00:00"}, "shabbat"),
        ("book_meeting", {"start": "2030-03-08T13:00:00"}, "shabbat"),
        ("book_meeting", {"start": "2030-03-08T10:00:00"}, "outside_business_hours"),
        ("book_meeting", {"start": "2030-03-06T21:00:00"}, "outside_business_hours"),
        ("book_meeting", {"start": "2030-03-05T12:30:00"}, "too_soon"),
        ("book_meeting", {}, "invalid_arguments"),
        ("schedule_callback", {"when": "2030-03-09T17:00:00"}, "shabbat"),
        ("schedule_callback", {"when": "2030-03-06T03:00:00"}, "outside_calling_hours"),
        ("schedule_callback", {"when": "2030-03-01T17:00:00"}, "in_the_past"),
        ("propose_slots", {"day": "2030-03-01"}, "in_the_past"),
        ("fly_to_the_moon", {}, "unknown_tool"),
    ],
)
async def test_invalid_tool_arguments_are_an_error_result_and_store_nothing(
    sim: ProviderSim,
    brain: LLMBrain,
    tools: InMemoryBookingTools,
    tool: str,
    arguments: dict[str, Any],
    error: str,
) -> None:
    """Bad ISO, past, Shabbat, outside hours: the model reads an error result; nothing stored."""
    recorder = Recorder(
        SimReply(tool_calls=(SimToolCall(tool, arguments),)),
        SimReply(text="אין בעיה, נבדוק מועד אחר. מה עוד נוח?"),
    )
    sim.responder = recorder
    state = _state()
    reply = await brain.respond(state, "תקבעי לי", now=NOW)
    [result] = _tool_results(recorder.requests[1])
    assert result["ok"] is False and result["error"] == error
    assert tools.meetings == [] and tools.callbacks == []
    assert reply.actions == () and not reply.end_call
    assert reply.text == "אין בעיה, נבדוק מועד אחר. מה עוד נוח?"
    assert state.outcome is None and state.stage == st.PERMISSION


async def test_taken_slot_is_refused_with_alternatives(
    sim: ProviderSim, brain: LLMBrain, tools: InMemoryBookingTools
) -> None:
    """Booking over someone else's meeting returns slot_taken and free alternatives."""
    tools.busy.append((TOMORROW_10, TOMORROW_10.replace(hour=11)))
    recorder = Recorder(
        SimReply(tool_calls=(SimToolCall("book_meeting", {"start": TOMORROW_10.isoformat()}),)),
        SimReply(text="השעה הזאת תפוסה. אפשר בעשר וחצי?"),
    )
    sim.responder = recorder
    await brain.respond(_state(), "מחר בעשר", now=NOW)
    [result] = _tool_results(recorder.requests[1])
    assert result["error"] == "slot_taken"
    starts = [datetime.fromisoformat(a["start"]) for a in result["alternatives"]]
    assert starts and all(not TOMORROW_10 <= s < TOMORROW_10.replace(hour=11) for s in starts)
    assert tools.meetings == []


async def test_first_sentence_is_yielded_before_the_model_finishes(
    sim: ProviderSim, brain: LLMBrain
) -> None:
    """With a slow model, the first Sentence arrives long before the final Reply."""
    sim.config.llm_inter_token_ms = 60
    sim.responder = ScriptedResponder(
        default_texts=[
            "שלום, כאן נועה. רציתי לספר בקצרה על מערכת שעונה לטלפונים של העסק "
            "בכל שעה ביום ובלילה. מתי נוח לדבר?"
        ]
    )
    started = time.perf_counter()
    arrivals: list[tuple[float, Sentence | Reply]] = []
    async with aclosing(brain.respond_stream(_state(), "מה זה?", now=NOW)) as events:
        async for event in events:
            arrivals.append((time.perf_counter() - started, event))
    first_s = arrivals[0][0]
    reply_s, reply = arrivals[-1]
    print(f"first sentence {first_s * 1000:.0f} ms, reply {reply_s * 1000:.0f} ms")
    assert isinstance(arrivals[0][1], Sentence) and arrivals[0][1].text == "שלום, כאן נועה."
    assert isinstance(reply, Reply)
    assert reply_s - first_s > 0.6
    sentences = [e.text for _, e in arrivals if isinstance(e, Sentence)]
    assert len(sentences) >= 3 and reply.text == " ".join(sentences)


async def test_cancelled_stream_leaves_only_the_callers_words_in_history(
    sim: ProviderSim, brain: LLMBrain
) -> None:
    """Closing the stream after the first sentence (barge-in) appends the caller's words only:
    what of the reply was heard is the call's SpeechHandle to write, not the brain's."""
    sim.config.llm_inter_token_ms = 40
    sim.responder = ScriptedResponder(
        default_texts=["בטח, אשמח להסביר. המערכת עונה ללקוחות בטלפון. היא גם קובעת תורים."]
    )
    state = _state()
    async with aclosing(brain.respond_stream(state, "מה אתם עושים?", now=NOW)) as events:
        first = await anext(events)
    assert first == Sentence("בטח, אשמח להסביר.")
    assert [(t.role, t.content) for t in state.history[1:]] == [
        ("user", "מה אתם עושים?"),
    ]


async def test_digits_and_markup_are_rewritten_for_speech(
    sim: ProviderSim, brain: LLMBrain
) -> None:
    """Model text with markdown and digits is spoken as clean Hebrew words."""
    sim.responder = ScriptedResponder(default_texts=["**מעולה!** יש מקום מחר ב-14:30."])
    reply = await brain.respond(_state(), "מתי יש?", now=NOW)
    assert reply.text == "מעולה! יש מקום מחר בשתיים וחצי."


def _break_model(sim: ProviderSim, mode: str) -> None:
    if mode == "errors":
        sim.config.llm.error_rate = 1.0
    elif mode == "garbage":
        sim.config.llm_garbage = True
    elif mode == "hang":
        sim.config.llm.hang = True
    elif mode == "english":
        sim.responder = ScriptedResponder(default_texts=["As an AI language model I cannot."])
    elif mode == "empty":
        sim.responder = ScriptedResponder(default_texts=[""])
    elif mode == "bad_json":
        broken = SimToolCall("add_to_do_not_call", raw_arguments='{"confirm": tr')
        sim.responder = lambda _: SimReply(tool_calls=(broken,))


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("errors", "provider_error"),
        ("garbage", "provider_error"),
        ("hang", "timeout"),
        ("english", "not_hebrew"),
        ("empty", "empty_reply"),
        ("bad_json", "bad_tool_arguments"),
    ],
)
async def test_unusable_model_turns_are_answered_by_the_rule_brain(
    sim: ProviderSim,
    llm: OpenAILanguageModel,
    tools: InMemoryBookingTools,
    metrics: Metrics,
    mode: str,
    reason: str,
) -> None:
    """Errors, garbage, a hang, junk, silence or broken JSON twice: the caller hears exactly
    what the rule brain alone would say, its action happens, and one fallback is logged."""
    _break_model(sim, mode)
    # Only the hang waits for the deadline; the others fail fast on their own, and a short
    # deadline there would turn a slow (loaded) error into a "timeout" fallback.
    timeout_s = FIRST_SENTENCE_TIMEOUT_S if mode == "hang" else ROOMY_FIRST_SENTENCE_TIMEOUT_S
    brain = _brain(llm, tools, metrics, timeout_s)
    state = _state()
    expected_state = copy.deepcopy(state)
    expected = await RuleBrain(tools=InMemoryBookingTools(calendar=CAL, clock=NOW), calendar=CAL)\
        .respond(expected_state, "תוריד אותי מהרשימה", now=NOW)  # fmt: skip
    started = time.perf_counter()
    with capture_logs() as logs:
        reply = await brain.respond(state, "תוריד אותי מהרשימה", now=NOW)
    elapsed_s = time.perf_counter() - started
    assert reply == expected
    assert state == expected_state
    assert tools.do_not_call is True
    fallbacks = [e for e in logs if e["event"] == "brain.llm_fallback"]
    assert [e["reason"] for e in fallbacks] == [reason]
    assert _fallbacks(metrics, reason) == 1
    assert sim.requests["llm"] >= 1
    assert elapsed_s < timeout_s + 1.0


async def test_broken_json_once_is_sent_back_and_the_retry_is_used(
    sim: ProviderSim, brain: LLMBrain, tools: InMemoryBookingTools
) -> None:
    """Arguments that are not JSON get an invalid_json result; a good retry books, no fallback."""
    recorder = Recorder(
        SimReply(tool_calls=(SimToolCall("book_meeting", raw_arguments='{"start": "2030-03-0'),)),
        SimReply(tool_calls=(SimToolCall("book_meeting", {"start": TOMORROW_10.isoformat()}),)),
        SimReply(text=BOOKED_TEXT),
    )
    sim.responder = recorder
    with capture_logs() as logs:
        reply = await brain.respond(_state(), "כן, מחר בעשר", now=NOW)
    assert _tool_results(recorder.requests[1])[0]["error"] == "invalid_json"
    assert [m.start for m in tools.meetings] == [TOMORROW_10]
    assert reply.text == BOOKED_TEXT
    assert not [e for e in logs if e["event"] == "brain.llm_fallback"]


async def test_failure_after_a_tool_acted_ends_with_its_fixed_closing(
    sim: ProviderSim, brain: LLMBrain, tools: InMemoryBookingTools, metrics: Metrics
) -> None:
    """If the model fails after booking, the booking stands and the fixed closing is said;
    the rule brain does not answer the turn again (no second booking)."""

    def book_then_break(messages: Sequence[dict[str, Any]]) -> SimReply:
        sim.config.llm.error_rate = 1.0
        return SimReply(tool_calls=(SimToolCall("book_meeting", {"start": "2030-03-06T10:00"}),))

    sim.responder = book_then_break
    state = _state()
    reply = await brain.respond(state, "כן מתאים", now=NOW)
    assert len(tools.meetings) == 1
    assert reply.text == to_spoken(say.booked(TOMORROW_10, NOW, AgentScript.default()))
    assert reply.end_call and [a.kind for a in reply.actions] == ["book_meeting", "end_call"]
    assert state.outcome == "booked"
    assert _fallbacks(metrics, "provider_error") == 1


async def test_junk_after_a_spoken_sentence_ends_the_turn_with_what_was_said(
    sim: ProviderSim, brain: LLMBrain
) -> None:
    """A sentence already spoken is not taken back: later junk just ends the turn."""
    sim.responder = ScriptedResponder(
        default_texts=["מעולה, נשמע טוב. Lorem ipsum dolor sit amet, consectetur adipiscing."]
    )
    state = _state()
    reply = await brain.respond(state, "יש לנו עשרה עובדים", now=NOW)
    assert reply.text == "מעולה, נשמע טוב."
    assert state.history[-1] == ChatTurn("assistant", "מעולה, נשמע טוב.")


@pytest.mark.parametrize(
    ("said", "tool", "kinds", "outcome", "transfer"),
    [
        ("תוריד אותי מהרשימה", "add_to_do_not_call", ["add_to_do_not_call", "end_call"],
         "do_not_call", False),
        ("אפשר נציג אנושי?", "transfer_to_human", ["transfer_to_human"], "transferred", True),
        ("לא מעוניין תודה", "mark_not_interested", ["mark_not_interested", "end_call"],
         "not_interested", False),
        ("טעות במספר", "end_call", ["mark_not_interested", "end_call"], "wrong_number", False),
    ],
)  # fmt: skip
async def test_ending_tools_map_to_rule_brain_actions(
    sim: ProviderSim,
    brain: LLMBrain,
    tools: InMemoryBookingTools,
    said: str,
    tool: str,
    kinds: list[str],
    outcome: str,
    transfer: bool,
) -> None:
    """Each ending tool yields the same action kinds, outcome and flags as the rule brain."""
    arguments = {"reason": "wrong_number" if tool == "end_call" else "יקר"}
    sim.responder = ScriptedResponder(
        [Rule(said, tool=SimToolCall(tool, arguments))], after_tool_text="בסדר גמור, יום טוב!"
    )
    state = _state()
    reply = await brain.respond(state, said, now=NOW)
    assert [a.kind for a in reply.actions] == kinds
    assert (state.stage, state.outcome) == (st.ENDED, outcome)
    assert reply.transfer is transfer and reply.end_call is not transfer
    assert tools.do_not_call is (tool == "add_to_do_not_call")
    expected_reasons = {"mark_not_interested": ["יקר"], "end_call": ["wrong_number"]}
    assert tools.not_interested_reasons == expected_reasons.get(tool, [])


async def test_after_the_call_ended_the_rule_brain_says_goodbye(
    sim: ProviderSim, brain: LLMBrain
) -> None:
    """A turn after an ending needs no model: the fixed goodbye, and no LLM request."""
    state = _state(stage=st.ENDED)
    reply = await brain.respond(state, "רגע, עוד שאלה", now=NOW)
    assert reply.end_call and reply.text == say.GOODBYE
    assert sim.requests["llm"] == 0


async def test_rule_brain_continues_from_the_question_the_model_asked(
    sim: ProviderSim, brain: LLMBrain, tools: InMemoryBookingTools
) -> None:
    """When the model asked the script's last qualifying question and then fails, the rule
    brain takes the caller's answer as that answer and goes on to offer meeting slots."""
    question = AgentScript.default().qualifying_questions[-1]
    sim.responder = ScriptedResponder(default_texts=[f"יופי, תודה. {question}"])
    state = _state()
    await brain.respond(state, "יש לנו עשרה עובדים", now=NOW)
    assert (state.stage, state.qualify_index) == (st.QUALIFY, 1)
    sim.config.llm.error_rate = 1.0
    reply = await brain.respond(state, "בעיקר אני עונה בעצמי", now=NOW)
    assert state.stage == st.PROPOSE and len(state.proposed_slots) == 2
    assert reply.text.startswith("יש מקום")
    assert state.answers == ["בעיקר אני עונה בעצמי"]


async def test_model_sees_the_script_the_lead_and_the_conversation(
    sim: ProviderSim, llm: OpenAILanguageModel, tools: InMemoryBookingTools
) -> None:
    """The request carries the campaign script and lead in the system prompt, the greeting
    the agent opened with (even when the history is empty), then the caller's words."""
    script = AgentScript.default().model_copy(update={"agent_name": "מיכל"})
    brain = LLMBrain(
        llm=llm,
        fallback=RuleBrain(tools=tools, calendar=CAL, script=script),
        tools=tools,
        calendar=CAL,
        script=script,
    )
    recorder = Recorder(SimReply(text="נעים מאוד. זה זמן טוב לדבר דקה?"))
    sim.responder = recorder
    state = ConversationState(lead=LeadContext(lead_id=3, name="רונית", company=None))
    await brain.respond(state, "הלו, מי זה?", now=NOW)
    [messages] = recorder.requests
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    assert "מיכל" in messages[0]["content"] and "רונית" in messages[0]["content"]
    assert messages[1]["content"] == script.render_greeting("רונית")
    assert messages[2]["content"] == "הלו, מי זה?"
    assert state.stage == st.PERMISSION


async def test_offered_slots_are_named_when_the_model_fails_after_proposing(
    sim: ProviderSim, brain: LLMBrain
) -> None:
    """Words already spoken stay; the slots the tool chose are then named by the fixed phrase."""

    def check_then_break(messages: Sequence[dict[str, Any]]) -> SimReply:
        sim.config.llm.error_rate = 1.0
        return SimReply(text="רגע, בודקים מה פנוי.", tool_calls=(SimToolCall("propose_slots"),))

    sim.responder = check_then_break
    state = _state()
    reply = await brain.respond(state, "כן, בואו נקבע", now=NOW)
    assert len(state.proposed_slots) == 2 and state.stage == st.PROPOSE
    assert reply.text == f"רגע, בודקים מה פנוי. {say.offer_slots(state.proposed_slots, NOW)}"
    assert reply.actions == () and not reply.end_call


async def test_model_sentences_reach_tts_in_spoken_form(sim: ProviderSim, brain: LLMBrain) -> None:
    """The issue's model reply is streamed sentence by sentence in its spoken form: prices
    with agorot, dollars, 'חמישה אנשים', 'שעתיים'; no digit or currency sign reaches TTS."""
    sim.responder = ScriptedResponder(
        default_texts=[
            "המחיר הוא 49.90 ₪ לחודש, או 56$ בדולרים. יש לנו 5 אנשים בצוות ונחזור אליך תוך 2 שעות."
        ]
    )
    sentences: list[str] = []
    async with aclosing(brain.respond_stream(_state(), "כמה זה עולה?", now=NOW)) as events:
        async for event in events:
            if isinstance(event, Sentence):
                sentences.append(event.text)
    spoken = " ".join(sentences)
    assert "ארבעים ותשעה שקלים ותשעים אגורות" in spoken
    assert "חמישים ושישה דולרים" in spoken
    assert "חמישה אנשים" in spoken and "תוך שעתיים" in spoken
    assert not any(ch.isdigit() or ch in "₪$€%" for ch in spoken)


async def test_question_with_digits_is_tracked_in_spoken_form(
    sim: ProviderSim, tools: InMemoryBookingTools
) -> None:
    """A script question written with digits is recognised when the model asks it, though
    what was said is its spoken form ('יותר מחמישה עובדים')."""
    question = "יש אצלכם יותר מ-5 עובדים?"
    script = AgentScript(qualifying_questions=("מה התחום של העסק?", question))
    model = OpenAILanguageModel(sim.endpoint("llm", timeout_s=3.0), first_token_timeout_s=2.0)
    brain = LLMBrain(
        llm=model,
        fallback=RuleBrain(tools=tools, calendar=CAL, script=script),
        tools=tools,
        calendar=CAL,
        script=script,
    )
    sim.responder = ScriptedResponder(default_texts=[f"מעולה. {question}"])
    state = _state()
    try:
        reply = await brain.respond(state, "אנחנו מספרה", now=NOW)
    finally:
        await model.aclose()
    assert "מחמישה עובדים" in reply.text
    assert state.stage == st.QUALIFY and state.qualify_index == 1


@pytest.mark.parametrize("end", ["no_done", "no_finish"])
async def test_a_stream_without_done_is_the_models_reply(
    sim: ProviderSim, brain: LLMBrain, tools: InMemoryBookingTools, end: str
) -> None:
    """A streamed answer whose body just ends (no ``[DONE]``, even no finish reason) is
    taken as it came: its text is spoken and its tool call runs, with no fallback."""
    sim.config.llm_stream_end = end  # type: ignore[assignment]
    sim.responder = Recorder(
        SimReply(tool_calls=(SimToolCall("book_meeting", {"start": TOMORROW_10.isoformat()}),)),
        SimReply(text=BOOKED_TEXT),
    )
    with capture_logs() as logs:
        reply = await brain.respond(_state(), "כן, מחר בעשר", now=NOW)
    assert reply.text == BOOKED_TEXT
    assert [m.start for m in tools.meetings] == [TOMORROW_10]
    assert not [e for e in logs if e["event"] == "brain.llm_fallback"]


@pytest.mark.parametrize("end", ["no_done", "no_finish"])
async def test_broken_tool_json_in_a_stream_without_done_falls_back_to_the_rules(
    sim: ProviderSim,
    llm: OpenAILanguageModel,
    tools: InMemoryBookingTools,
    metrics: Metrics,
    end: str,
) -> None:
    """Broken tool arguments every round, in streams that never say ``[DONE]``: the rule
    brain answers the turn (its opt-out happens) and one fallback is logged."""
    sim.config.llm_stream_end = end  # type: ignore[assignment]
    broken = SimToolCall("add_to_do_not_call", raw_arguments='{"confirm": tr')
    sim.responder = lambda _: SimReply(tool_calls=(broken,))
    brain = _brain(llm, tools, metrics, ROOMY_FIRST_SENTENCE_TIMEOUT_S)
    with capture_logs() as logs:
        reply = await brain.respond(_state(), "תוריד אותי מהרשימה", now=NOW)
    assert reply.text and reply.end_call
    assert tools.do_not_call is True
    fallbacks = [e["reason"] for e in logs if e["event"] == "brain.llm_fallback"]
    assert fallbacks == ["bad_tool_arguments"]
