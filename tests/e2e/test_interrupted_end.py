"""A reply that ends the call, cut by the caller or not (#10): the side effects the brain
already ran stand either way; the hang-up happens only when the caller let the reply play.
The model says three sentences and calls ``mark_not_interested`` (which ends the call)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.test_call_faults import (
    ACCOUNT_SID,
    ANSWER,
    AUTH_TOKEN,
    LLM_REPLY,
    QUESTION,
    S1,
    SECOND_REPLY,
    StartServer,
    _greeting_heard,
    _live_at_twilio,
    _rest_update,
    _stored_turns,
    _ulaw,
    server,
    sim,
    twilio_api,
)
from voicebot.testing.provider_sim import ProviderSim, Rule, ScriptedResponder, SimToolCall
from voicebot.testing.twilio_api_sim import TwilioApiSimulator
from voicebot.testing.twilio_caller import DEFAULT_TO, place_call

__all__ = ["server", "sim", "twilio_api"]  # the fixtures this module borrows

NOT_INTERESTED = SimToolCall("mark_not_interested", {"reason": "לא רלוונטי כרגע"})


def _ending_model(sim: ProviderSim) -> None:
    sim.responder = ScriptedResponder(
        [
            Rule(pattern=QUESTION[:8], text=SECOND_REPLY),
            Rule(pattern="אפשר", text=LLM_REPLY, tool=NOT_INTERESTED),
        ]
    )


async def _lead(base: str) -> int:
    async with httpx.AsyncClient(base_url=base) as http:
        lead = await http.post("/api/v1/leads", json={"name": "דנה כהן", "phone": DEFAULT_TO})
        assert lead.status_code == 201, lead.text
        lead_id: int = lead.json()["id"]
        return lead_id


async def _lead_status(base: str, lead_id: int) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        lead: dict[str, Any] = (await http.get(f"/api/v1/leads/{lead_id}")).json()
    status: str = lead["status"]
    return status


async def test_end_call_of_a_reply_played_whole_hangs_up(
    server: StartServer, sim: ProviderSim, twilio_api: tuple[TwilioApiSimulator, str]
) -> None:
    """The caller lets the ending reply play: the REST hang-up follows, the lead is
    marked not interested."""
    api, _ = twilio_api
    sid = "CA" + "b7" * 16
    _live_at_twilio(api, sid)
    _ending_model(sim)
    async with server() as base:
        lead_id = await _lead(base)
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            await _greeting_heard(call)
            call.say(_ulaw(ANSWER))
            await _rest_update(api, sid, timeout_s=40)
            cleared = call.metrics.clears
        status = await _lead_status(base, lead_id)
    assert [u.value("Status") for u in api.updates_for(sid)] == ["completed"]
    assert cleared == 0
    assert status == "not_interested"


async def test_end_call_of_a_reply_the_caller_cut_is_withdrawn_until_they_are_answered(
    server: StartServer, sim: ProviderSim, twilio_api: tuple[TwilioApiSimulator, str]
) -> None:
    """The caller speaks over the ending reply: no hang-up on a speaking caller; their
    words are answered first (by the brain whose conversation had ended: its goodbye),
    and only that answer's end hangs up. The tool's effect stands (the lead is not
    interested) and the cut reply is stored as heard, marked interrupted."""
    api, _ = twilio_api
    sid = "CA" + "c8" * 16
    _live_at_twilio(api, sid)
    _ending_model(sim)
    async with server() as base:
        lead_id = await _lead(base)
        async with place_call(
            base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, call_sid=sid
        ) as call:
            await _greeting_heard(call)
            marks = len(call.metrics.marks)
            call.say(_ulaw(ANSWER))
            # S1's mark came back: the model's final event (with the end) is in by now.
            await call.wait_until(lambda: len(call.metrics.marks) > marks, 30)
            await asyncio.sleep(0.8)
            speech = call.say(_ulaw(QUESTION))
            await call.wait_until(lambda: speech.clear_latency_ms is not None, 10)
            await call.wait_until(lambda: speech.response_latency_ms is not None, 30)
            hung_up_before_the_answer = bool(api.updates_for(sid))
            await _rest_update(api, sid, timeout_s=30)
        turns = await _stored_turns(base)
        status = await _lead_status(base, lead_id)
    assert not hung_up_before_the_answer
    assert status == "not_interested"
    roles = [(t["role"], t["text"]) for t in turns]
    cut = next(t for t in turns if t["role"] == "assistant" and t["text"].startswith(S1))
    assert cut["interrupted"] is True
    assert cut["text"] != LLM_REPLY
    asked = roles.index(("user", QUESTION))
    assert any(role == "assistant" for role, _ in roles[asked + 1 :]), roles
