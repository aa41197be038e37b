"""The LLM's tools on the real database: refused times store nothing, an agreed time is
stored once; on SQLite and Postgres, through the simulator and the real openai client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from structlog.testing import capture_logs

from voicebot.brain.base import ConversationState
from voicebot.brain.llm import LLMBrain
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import SATURDAY, BusinessCalendar
from voicebot.db.booking_tools import DbBookingTools
from voicebot.providers.openai_llm import OpenAILanguageModel
from voicebot.testing.provider_sim import ProviderSim, SimConfig, SimReply, SimToolCall


@pytest.fixture(autouse=True)
def _captured_logs() -> Iterator[None]:
    with capture_logs():
        yield


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with ProviderSim(SimConfig(seed=2)) as running:
        yield running


def _next(now: datetime, weekdays: set[int]) -> datetime:
    day = now + timedelta(days=1)
    while day.weekday() not in weekdays:
        day += timedelta(days=1)
    return day


def _start(kind: str, now: datetime, business_days: frozenset[int]) -> str:
    workday = _next(now, set(business_days) - {SATURDAY})
    if kind == "bad_iso":
        return "מחר בעשר"
    if kind == "past":
        return (now - timedelta(days=1)).replace(hour=10, minute=0).isoformat()
    if kind == "shabbat":
        return _next(now, {SATURDAY}).replace(hour=10, minute=0).isoformat()
    if kind == "outside_hours":
        return workday.replace(hour=21, minute=0).isoformat()
    return workday.replace(hour=11, minute=0, second=0, microsecond=0).isoformat()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("bad_iso", "invalid_arguments"),
        ("past", "in_the_past"),
        ("shabbat", "shabbat"),
        ("outside_hours", "outside_business_hours"),
        ("agreed", None),
    ],
)
async def test_book_meeting_on_the_database(
    app: Starlette, client: httpx.AsyncClient, sim: ProviderSim, kind: str, error: str | None
) -> None:
    """Bad ISO, past, Shabbat or outside hours: an error result, no row; an agreed time: one row."""
    services = app.state.voicebot
    settings = services.settings
    lead = await client.post("/api/v1/leads", json={"phone": "052-5551234", "name": "יוסי"})
    lead_id = lead.json()["id"]
    now = datetime.now(settings.tz)
    start = _start(kind, now, settings.business_weekdays)
    seen: list[list[dict[str, Any]]] = []

    def model(messages: Sequence[dict[str, Any]]) -> SimReply:
        seen.append(list(messages))
        if messages[-1]["role"] == "tool":
            return SimReply(text="בסדר, רשמנו.")
        return SimReply(tool_calls=(SimToolCall("book_meeting", {"start": start}),))

    sim.responder = model
    calendar = BusinessCalendar.from_settings(settings)
    tools = DbBookingTools(settings=settings, sessions=services.sessions, lead_id=lead_id)
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    brain = LLMBrain(
        llm=llm,
        fallback=RuleBrain(tools=tools, calendar=calendar),
        tools=tools,
        calendar=calendar,
    )
    reply = await brain.respond(ConversationState(stage="propose"), "כן, מתאים", now=now)
    await llm.aclose()
    result = json.loads(seen[1][-1]["content"])
    meetings = (await client.get("/api/v1/meetings")).json()["items"]
    if error is None:
        assert result["ok"] is True
        assert [datetime.fromisoformat(m["start"]) for m in meetings] == [
            datetime.fromisoformat(start)
        ]
        assert [a.kind for a in reply.actions] == ["book_meeting", "end_call"]
    else:
        assert result["error"] == error
        assert meetings == []
        assert reply.actions == ()
        lead_status = (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"]
        assert lead_status != "meeting_booked"
