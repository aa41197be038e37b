"""The model's opt-out tool while the database refuses it: the tool succeeds for the model
(the removal goodbye ends the call), the opt-out waits in the outbox, and a drain writes
it once the database is back (on SQLite and Postgres, through the provider simulator)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tests.conftest import make_settings
from tests.integration.jobs.test_optout_outbox import (  # real and refused databases
    down_sessions,
    sessions,
)
from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.llm import LLMBrain
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar
from voicebot.db.booking_tools import DbBookingTools
from voicebot.db.models import DoNotCall, Lead
from voicebot.db.optouts import drain_outbox
from voicebot.providers.openai_llm import OpenAILanguageModel
from voicebot.store.optout_outbox import OptOutOutbox
from voicebot.testing.provider_sim import ProviderSim, SimConfig, SimReply, SimToolCall

__all__ = ["down_sessions", "sessions"]
PHONE = "+972525550177"


async def test_the_models_opt_out_during_a_database_outage_ends_the_call_and_is_kept(
    database_url: str, sessions: Any, down_sessions: Any
) -> None:
    """add_to_do_not_call with the database down: the model's tool result is ok, the reply
    ends the call with outcome do_not_call, the entry is in the outbox, and a drain on the
    recovered database writes the number."""
    settings = make_settings(database_url=database_url)
    async with sessions() as session:
        lead = Lead(phone=PHONE, name="יוסי")
        session.add(lead)
        await session.commit()
        lead_id = lead.id
    results: list[str] = []

    def model(messages: Sequence[dict[str, Any]]) -> SimReply:
        if messages[-1]["role"] == "tool":
            results.append(str(messages[-1]["content"]))
            return SimReply(text="הסרנו אותך, יום טוב.")
        return SimReply(tool_calls=(SimToolCall("add_to_do_not_call", {}),))

    outbox = OptOutOutbox()
    tools = DbBookingTools(
        settings=settings, sessions=down_sessions, lead_id=lead_id, phone=PHONE, optouts=outbox
    )
    calendar = BusinessCalendar.from_settings(settings)
    async with ProviderSim(SimConfig(seed=4)) as sim:
        sim.responder = model
        llm = OpenAILanguageModel(sim.endpoint("llm"))
        brain = LLMBrain(
            llm=llm,
            fallback=RuleBrain(tools=tools, calendar=calendar),
            tools=tools,
            calendar=calendar,
        )
        state = ConversationState(lead=LeadContext(lead_id, "יוסי", None, PHONE))
        reply = await brain.respond(state, "תורידו אותי מהרשימה", now=datetime.now(settings.tz))
        await llm.aclose()
    assert "add_to_do_not_call" in [a.kind for a in reply.actions], reply
    assert reply.end_call and state.outcome == "do_not_call"
    assert all("tool_failed" not in r for r in results), results
    assert len(await outbox.peek(10)) == 1

    assert await drain_outbox(outbox, sessions, settings) == 1
    async with sessions() as session:
        assert [d.phone for d in (await session.scalars(select(DoNotCall))).all()] == [PHONE]
    assert await outbox.peek(10) == []
