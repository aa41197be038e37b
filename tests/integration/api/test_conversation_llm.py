"""Scripted conversations over the text API with the LLM brain (simulated OpenAI, real
openai client, real database) reach their outcomes, and the same scripts still do with
the model failing (errors, garbage, a hang) through the rule-brain fallback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import make_settings
from tests.integration.api.conversation import create_lead, talk
from voicebot.brain.llm_tools import ARGUMENT_MODELS
from voicebot.brain.speech_text import WEEKDAY_NAMES
from voicebot.config import Settings
from voicebot.testing.provider_sim import ProviderSim, Rule, SimConfig, SimReply, SimToolCall

MODES = ["llm", "errors", "garbage", "hang"]
LLM_INTENTS = frozenset({"llm", *ARGUMENT_MODELS})
HANG_TIMEOUT_S = 0.5  # the LLM timeout in hang mode, so each turn falls back quickly
NORMAL_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Day:
    """The next business day, as a caller names it and as a date."""

    phrase: str
    day: date

    def at(self, settings: Settings, clock: time) -> datetime:
        return datetime.combine(self.day, clock, tzinfo=settings.tz)


def next_business_day(settings: Settings) -> Day:
    today = datetime.now(settings.tz).date()
    day = today + timedelta(days=1)
    while day.weekday() not in settings.business_weekdays:
        day += timedelta(days=1)
    phrase = "מחר" if day == today + timedelta(days=1) else f"ביום {WEEKDAY_NAMES[day.weekday()]}"
    return Day(phrase, day)


class SalesModel:
    """Plays a model for these scripts: rules on the caller's words, and replies written from
    the tool results it reads (slots offered, booking confirmed, refusal explained)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = rules

    def __call__(self, messages: Sequence[dict[str, Any]]) -> SimReply:
        if messages[-1]["role"] == "tool":
            return SimReply(text=self._after_tool(json.loads(messages[-1]["content"])))
        said = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        for rule in self._rules:
            if rule.pattern in said:
                return SimReply(text=rule.text, tool_calls=(rule.tool,) if rule.tool else ())
        return SimReply(text="הבנתי. אפשר לקבוע שיחה קצרה עם יועץ?")

    @staticmethod
    def _after_tool(result: dict[str, Any]) -> str:
        if not result["ok"]:
            return "אין בעיה, נבדוק מועד אחר. מה עוד נוח?"
        if "slots" in result:
            first, second = (s["spoken"] for s in result["slots"])
            return f"יש מקום {first}, או {second}. מה מתאים יותר?"
        if "meeting_id" in result:
            return f"מעולה, קבענו {result['spoken']}. תודה ויום טוב!"
        return "בסדר גמור, תודה ויום טוב!"


def sales_rules(settings: Settings) -> list[Rule]:
    day = next_business_day(settings)
    meeting = day.at(settings, time(10, 0)).isoformat()
    callback = day.at(settings, time(17, 0)).isoformat()
    book = SimToolCall("book_meeting", {"start": meeting, "notes": "20 עובדים"})
    return [
        Rule("בן אדם", tool=SimToolCall("transfer_to_human", {})),
        Rule("תוריד", tool=SimToolCall("add_to_do_not_call", {})),
        Rule("אפשר לדבר", "מעולה, בקצרה: המערכת שלנו עונה ללקוחות בטלפון. כמה אנשים עובדים אצלכם?"),
        Rule("מעניין", "יופי. ואיך מטפלים היום בטלפונים שלא נענים?"),
        Rule("עובדים", tool=SimToolCall("propose_slots", {})),
        Rule("בעשר", f"רק לוודא: {day.phrase} בעשר בבוקר, נכון?"),
        Rule("כן מתאים", tool=book),
        Rule("עסוק", "לגמרי מובן. מתי נוח שנחזור?"),
        Rule("בחמש", tool=SimToolCall("schedule_callback", {"when": callback})),
    ]  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=11)) as running:
        yield running


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture
def settings(database_url: str, sim: ProviderSim, mode: str) -> Settings:
    """The app with its LLM pointed at the simulator, broken as ``mode`` says."""
    settings = make_settings(
        database_url=database_url,
        llm_base_url=sim.base_url,
        llm_api_key="sim-key",
        llm_timeout_s=HANG_TIMEOUT_S if mode == "hang" else NORMAL_TIMEOUT_S,
    )
    sim.responder = SalesModel(sales_rules(settings))
    sim.config.llm.error_rate = 1.0 if mode == "errors" else 0.0
    sim.config.llm_garbage = mode == "garbage"
    sim.config.llm.hang = mode == "hang"
    return settings


def _actions(replies: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [a for r in replies for a in r["actions"] if a["kind"] == kind]


def _fallbacks(app: Starlette) -> float:
    registry = app.state.voicebot.metrics.registry
    return sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "voicebot_provider_errors"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["kind"].startswith("fallback_")
    )


def _check_brain(
    mode: str, app: Starlette, sim: ProviderSim, replies: list[dict[str, Any]], tool: str
) -> None:
    """The LLM answered every turn in llm mode; every turn fell back otherwise."""
    assert sim.requests["llm"] >= len(replies)
    intents = [r["intent"] for r in replies]
    if mode == "llm":
        assert intents[-1] == tool
        assert _fallbacks(app) == 0
    else:
        assert not LLM_INTENTS & set(intents), intents
        assert _fallbacks(app) == len(replies)


async def test_booking_lands_in_meetings_table(
    client: httpx.AsyncClient, app: Starlette, sim: ProviderSim, settings: Settings, mode: str
) -> None:
    """The caller agrees to 10:00 on the next business day: one meeting at that time."""
    day = next_business_day(settings)
    lead_id = await create_lead(client)
    replies = await talk(
        client,
        lead_id,
        ["כן, אפשר לדבר", "כן מעניין אותי", "אממ יש לנו בערך עשרים עובדים",
         f"{day.phrase} בעשר", "כן מתאים"],
    )  # fmt: skip
    assert len(_actions(replies, "book_meeting")) == 1
    assert replies[-1]["end_call"] is True
    meetings = (await client.get("/api/v1/meetings")).json()["items"]
    assert len(meetings) == 1
    assert meetings[0]["lead_id"] == lead_id
    start = datetime.fromisoformat(meetings[0]["start"])
    assert start == day.at(settings, time(10, 0))
    assert (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"] == "meeting_booked"
    _check_brain(mode, app, sim, replies, "book_meeting")


async def test_opt_out_lands_in_do_not_call(
    client: httpx.AsyncClient, app: Starlette, sim: ProviderSim, mode: str
) -> None:
    """'תוריד אותי מהרשימה' puts the number on do-not-call and ends the conversation."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["תוריד אותי מהרשימה"])
    assert replies[0]["end_call"] is True
    dnc = (await client.get("/api/v1/do-not-call")).json()["items"]
    assert [d["phone"] for d in dnc] == ["+972544567890"]
    assert (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"] == "do_not_call"
    _check_brain(mode, app, sim, replies, "add_to_do_not_call")


async def test_call_me_tomorrow_at_five_schedules_callback(
    client: httpx.AsyncClient, app: Starlette, sim: ProviderSim, settings: Settings, mode: str
) -> None:
    """'תתקשר אליי מחר בחמש' (or the next business day) schedules a callback at 17:00."""
    day = next_business_day(settings)
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["אני עסוק עכשיו", f"תתקשר אליי {day.phrase} בחמש"])
    [callback] = _actions(replies, "schedule_callback")
    assert datetime.fromisoformat(callback["data"]["when"]) == day.at(settings, time(17, 0))
    lead = (await client.get(f"/api/v1/leads/{lead_id}")).json()
    assert lead["status"] == "callback"
    _check_brain(mode, app, sim, replies, "schedule_callback")


async def test_request_for_human_triggers_transfer(
    client: httpx.AsyncClient, app: Starlette, sim: ProviderSim, mode: str
) -> None:
    """Asking for a person returns the transfer action."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["אפשר לדבר עם בן אדם?"])
    assert replies[0]["transfer"] is True
    assert len(_actions(replies, "transfer_to_human")) == 1
    _check_brain(mode, app, sim, replies, "transfer_to_human")
