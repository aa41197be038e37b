"""A live call answered by the LLM brain: the reply streams sentence by sentence into TTS,
and a failing model falls back to the rule brain without the caller hearing silence —
real loopback HTTP/SSE/websocket, the real `openai` client, espeak-ng TTS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import call_server_settings
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import (
    ProviderSim,
    Rule,
    ScriptedResponder,
    SimConfig,
    StageBehaviour,
)
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import SimulatedCall, place_call

ACCOUNT_SID = "AC" + "3" * 32
AUTH_TOKEN = "llm-call-auth-token"
AUDIO_CACHE = Path(".cache/hebrew_audio")
ANSWER = "כן, אפשר לדבר עכשיו"
LLM_REPLY = (
    "מצוין, תודה. אנחנו עוזרים לעסקים קטנים לחסוך בעלויות התקשורת בלי להחליף ספק, "
    "ורובם רואים תוצאות כבר בחודש הראשון. כמה עובדים יש אצלכם היום בערך?"
)
LLM_FIRST_TOKEN_MS = 200
LLM_INTER_TOKEN_MS = 60


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    config = SimConfig(
        llm=StageBehaviour(delay_ms=LLM_FIRST_TOKEN_MS),
        llm_inter_token_ms=LLM_INTER_TOKEN_MS,
        seed=7,
    )
    responder = ScriptedResponder([Rule(pattern="אפשר לדבר", text=LLM_REPLY)])
    async with ProviderSim(config, responder=responder) as running:
        running.register_phrase(ANSWER, synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE), 8000)
        yield running


@pytest.fixture
async def server(tmp_path: Path, sim: ProviderSim) -> AsyncIterator[tuple[str, Settings]]:
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        llm_base_url=sim.base_url,
        llm_api_key="sim-key",
        llm_timeout_s=2.0,
    )
    async with running_server(settings, port=port) as base:
        yield base, settings


async def _reply_played(call: SimulatedCall, quiet_s: float = 1.0) -> None:
    """Wait until the agent's reply has played out (nothing queued, no new audio for
    ``quiet_s``): the stored turn holds what the caller heard, so hang up after it."""
    async with asyncio.timeout(20):
        while True:
            heard_ms = call.metrics.agent_audio_ms
            await asyncio.sleep(quiet_s)
            if not call.playback.busy and call.metrics.agent_audio_ms == heard_ms:
                return


async def _one_turn(base: str) -> list[dict[str, object]]:
    """Greeting, one caller answer, the agent's reply; returns the stored turns."""
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_for_greeting(20)
        marks = len(call.metrics.marks)
        speech = call.say(pcm16_to_ulaw(synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE)))
        await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
        assert speech.response_latency_ms is not None, "the caller heard nothing back"
        await call.wait_until(lambda: len(call.metrics.marks) > marks, 20)
        await _reply_played(call)
    async with httpx.AsyncClient(base_url=base) as http:
        calls = (await http.get("/api/v1/calls")).json()["items"]
        detail = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
    turns: list[dict[str, object]] = detail["turns"]
    return turns


async def test_llm_reply_starts_playing_on_its_first_sentence(
    server: tuple[str, Settings], sim: ProviderSim
) -> None:
    """TTS starts on the first complete sentence, long before the model finished the reply."""
    base, _ = server
    turns = await _one_turn(base)
    reply = next(t for t in turns[1:] if t["role"] == "assistant")
    latency = reply["latency"]
    assert isinstance(latency, dict)
    words = len(LLM_REPLY.split())
    whole_stream_ms = LLM_FIRST_TOKEN_MS + words * LLM_INTER_TOKEN_MS
    # "brain" = STT done → first sentence ready: the first sentence, not the whole reply.
    assert latency["brain"] < whole_stream_ms / 2
    assert LLM_FIRST_TOKEN_MS <= latency["llm_first_token"] <= latency["brain"]
    assert "כמה עובדים" in str(reply["text"])
    assert reply["intent"] != "interrupted"


async def test_failing_llm_falls_back_to_the_rule_brain_mid_call(
    server: tuple[str, Settings], sim: ProviderSim
) -> None:
    """With every model request failing, the caller still gets the rule brain's answer."""
    base, _ = server
    sim.config.llm = StageBehaviour(error_rate=1.0, error_status=500)
    earlier = len(sim.log)  # the start-up warm-up's request
    turns = await _one_turn(base)
    reply = next(t for t in turns[1:] if t["role"] == "assistant")
    assert reply["text"] and "כמה עובדים" not in str(reply["text"])
    llm_statuses = [r.status for r in list(sim.log)[earlier:] if r.stage == "llm"]
    assert llm_statuses and set(llm_statuses) == {500}  # the turn (and the summary) tried it
