"""Call summaries: rule-based Hebrew from the state; the LLM's through the OpenAI-compatible
simulator; the rule-based one whenever the model fails, hangs or says nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from voicebot.brain.base import ChatTurn, ConversationState, LeadContext
from voicebot.brain.summary import CallFacts, rule_summary, summarize
from voicebot.providers.openai_llm import OpenAILanguageModel
from voicebot.testing.provider_sim import ProviderSim, ScriptedResponder, SimConfig

TZ = ZoneInfo("Asia/Jerusalem")
LLM_SUMMARY = "דנה קבעה פגישת היכרות ליום רביעי בעשר, יש לה עשרים עובדים."


def _state(**values: Any) -> ConversationState:
    state = ConversationState(lead=LeadContext(7, "דנה", "מספרת דנה"), **values)
    state.history = [
        ChatTurn("assistant", "היי דנה, כאן נועה מליד פלוס. זה זמן טוב לדבר דקה?"),
        ChatTurn("user", "כן, אפשר לדבר"),
    ]
    return state


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=5)) as running:
        running.responder = ScriptedResponder(default_texts=[LLM_SUMMARY])
        yield running


def test_booked_summary_names_the_meeting_time_and_answers() -> None:
    """A booked call says so with the local day and time, the qualifying answers and the
    objection count."""
    state = _state(answers=["יש לנו בערך עשרים עובדים"], objection_count=1)
    meeting = datetime(2026, 11, 25, 8, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in Israel
    text = rule_summary(state, CallFacts("meeting_booked", TZ, meeting))
    assert text.startswith("דנה: נקבעה פגישה ליום רביעי 25.11 בשעה 10:00.")
    assert "עשרים עובדים" in text
    assert "התנגדויות (1)" in text


def test_callback_summary_names_the_callback_time() -> None:
    """A callback call carries the agreed callback moment from the state."""
    state = _state(callback_at=datetime(2026, 11, 26, 17, 0, tzinfo=TZ))
    text = rule_summary(state, CallFacts("callback_scheduled", TZ))
    assert "ביקשו שנחזור ב" in text and "17:00" in text and "חמישי" in text


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ("do_not_call", "להסיר"),
        ("voicemail", "משיבון"),
        ("no_answer", "תשובה"),
        ("something_new", "בלי תוצאה"),
    ],
)
def test_each_outcome_has_its_sentence(outcome: str, words: str) -> None:
    """Every outcome, and an unknown one, yields a Hebrew sentence about it."""
    assert words in rule_summary(ConversationState(), CallFacts(outcome, TZ))


async def test_llm_summary_through_the_simulator(sim: ProviderSim) -> None:
    """With a language model the summary is the model's text, sent the transcript."""
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    try:
        text = await summarize(_state(), CallFacts("meeting_booked", TZ), llm=llm)
    finally:
        await llm.aclose()
    assert text == LLM_SUMMARY
    assert sim.requests["llm"] == 1


async def test_llm_failure_falls_back_to_rules(sim: ProviderSim) -> None:
    """A 500 from the model gives the rule-based summary, not an error."""
    sim.config.llm.error_rate = 1.0
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    state, facts = _state(), CallFacts("not_interested", TZ)
    try:
        with capture_logs() as logs:
            text = await summarize(state, facts, llm=llm)
    finally:
        await llm.aclose()
    assert text == rule_summary(state, facts)
    assert [e["event"] for e in logs] == ["call.summary_llm_failed"]


async def test_llm_hang_is_cut_by_the_timeout(sim: ProviderSim) -> None:
    """A model that never answers is abandoned after the summary timeout."""
    sim.config.llm.hang = True
    llm = OpenAILanguageModel(sim.endpoint("llm", timeout_s=30))
    state, facts = _state(), CallFacts("not_interested", TZ)
    try:
        with capture_logs() as logs:
            text = await summarize(state, facts, llm=llm, timeout_s=0.3)
    finally:
        await llm.aclose()
    assert text == rule_summary(state, facts)
    assert logs[0]["error"] == "TimeoutError"


async def test_empty_llm_answer_falls_back(sim: ProviderSim) -> None:
    """An empty model answer is not stored as the summary."""
    sim.responder = ScriptedResponder(default_texts=[""])
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    state, facts = _state(), CallFacts("completed", TZ)
    try:
        text = await summarize(state, facts, llm=llm)
    finally:
        await llm.aclose()
    assert text == rule_summary(state, facts)
