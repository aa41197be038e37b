"""OpenAILanguageModel streaming chat with tools against the simulator's SSE stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

import pytest

from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.providers.base import (
    ChatMessage,
    Finished,
    LLMEvent,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    ToolSpec,
)
from voicebot.providers.openai_llm import OpenAILanguageModel
from voicebot.testing.provider_sim import (
    ProviderSim,
    Rule,
    ScriptedResponder,
    SimReply,
    SimToolCall,
)

BOOK_ARGS = {"date": "2025-03-04", "time": "14:30", "name": "דני כהן"}
BOOK_TOOL = ToolSpec(
    name="book_meeting",
    description="קביעת פגישה",
    parameters={"type": "object", "properties": {"date": {"type": "string"}}},
)
HELLO = [ChatMessage("system", "את נציגה."), ChatMessage("user", "שלום")]


async def collect(llm: OpenAILanguageModel, messages: Sequence[ChatMessage]) -> list[LLMEvent]:
    async with aclosing(llm.stream_chat(messages, tools=[BOOK_TOOL])) as events:
        return [event async for event in events]


async def test_text_streams_as_deltas_then_finishes(sim: ProviderSim) -> None:
    """A plain reply arrives as several TextDeltas in order, then Finished('stop')."""
    sim.responder = ScriptedResponder(default_texts=["שלום! איך אפשר לעזור היום?"])
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    events = await collect(llm, HELLO)
    await llm.aclose()
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3
    assert "".join(deltas) == "שלום! איך אפשר לעזור היום?"
    assert events[-1] == Finished("stop")


async def test_tool_call_fragments_are_assembled_with_json_arguments(sim: ProviderSim) -> None:
    """Tool-call deltas split across chunks become one ToolCall with the exact JSON args."""
    sim.responder = ScriptedResponder([Rule("פגישה", tool=SimToolCall("book_meeting", BOOK_ARGS))])
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    events = await collect(llm, [ChatMessage("user", "אפשר לקבוע פגישה?")])
    await llm.aclose()
    ready = [e for e in events if isinstance(e, ToolCallsReady)]
    assert len(ready) == 1 and len(ready[0].calls) == 1
    call = ready[0].calls[0]
    assert call.name == "book_meeting" and call.id.startswith("call_")
    assert json.loads(call.arguments) == BOOK_ARGS
    assert events[-1] == Finished("tool_calls")


async def test_tool_results_are_sent_back_and_answered(sim: ProviderSim) -> None:
    """An assistant tool call plus its tool result round-trip; the reply is text."""
    seen: list[list[dict[str, Any]]] = []

    def responder(messages: Sequence[dict[str, Any]]) -> SimReply:
        seen.append(list(messages))
        return SimReply(text="קבענו.")

    sim.responder = responder
    call = ToolCall(id="call_1", name="book_meeting", arguments=json.dumps(BOOK_ARGS))
    history = [
        ChatMessage("user", "פגישה"),
        ChatMessage("assistant", None, tool_calls=(call,)),
        ChatMessage("tool", '{"ok": true}', tool_call_id="call_1"),
    ]
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    events = await collect(llm, history)
    await llm.aclose()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "קבענו."
    wire = seen[0]
    assert wire[1]["tool_calls"] == [
        {"id": "call_1", "type": "function",
         "function": {"name": "book_meeting", "arguments": json.dumps(BOOK_ARGS)}}
    ]  # fmt: skip
    assert wire[2] == {"role": "tool", "content": '{"ok": true}', "tool_call_id": "call_1"}


async def test_first_token_timeout_fails_fast(sim: ProviderSim) -> None:
    """A slow first token raises ProviderTimeoutError at the first-token limit, not later."""
    sim.config.llm.delay_ms = 3000
    llm = OpenAILanguageModel(sim.endpoint("llm", timeout_s=5), first_token_timeout_s=0.2)
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await collect(llm, HELLO)
    await llm.aclose()
    assert time.perf_counter() - started < 1.0


async def test_whole_stream_is_bounded_by_the_endpoint_timeout(sim: ProviderSim) -> None:
    """A stream that keeps trickling tokens is cut off at the overall timeout."""
    sim.config.llm_inter_token_ms = 150
    llm = OpenAILanguageModel(sim.endpoint("llm", timeout_s=0.5))
    received: list[LLMEvent] = []
    with pytest.raises(ProviderTimeoutError):
        async with aclosing(llm.stream_chat(HELLO)) as events:
            async for event in events:
                received.append(event)
    await llm.aclose()
    assert any(isinstance(e, TextDelta) for e in received)


async def test_consumer_time_is_not_charged_to_the_provider(sim: ProviderSim) -> None:
    """Slow consumption (TTS between sentences) does not make a fast provider time out."""
    llm = OpenAILanguageModel(sim.endpoint("llm", timeout_s=0.5))
    events: list[LLMEvent] = []
    async with aclosing(llm.stream_chat(HELLO)) as stream:
        async for event in stream:
            events.append(event)
            await asyncio.sleep(0.1)
    await llm.aclose()
    assert isinstance(events[-1], Finished) and events[-1].reason == "stop"


@pytest.mark.parametrize("status", [500, 429])
async def test_http_errors_become_provider_errors(sim: ProviderSim, status: int) -> None:
    """A 500 or 429 answer is a (non-timeout) ProviderError with the status."""
    sim.config.llm.error_rate = 1.0
    sim.config.llm.error_status = status
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    with pytest.raises(ProviderError) as caught:
        await collect(llm, HELLO)
    await llm.aclose()
    assert not isinstance(caught.value, ProviderTimeoutError)
    assert caught.value.details["status"] == status


async def test_garbage_stream_is_a_provider_error(sim: ProviderSim) -> None:
    """Malformed SSE data is a ProviderError, not a crash of another type."""
    sim.config.llm_garbage = True
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    with pytest.raises(ProviderError):
        await collect(llm, HELLO)
    await llm.aclose()


async def test_hang_times_out_at_the_first_token_limit(sim: ProviderSim) -> None:
    """A server that never answers is a ProviderTimeoutError after the first-token limit."""
    sim.config.llm.hang = True
    llm = OpenAILanguageModel(sim.endpoint("llm", timeout_s=5), first_token_timeout_s=0.2)
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await collect(llm, HELLO)
    await llm.aclose()
    assert time.perf_counter() - started < 1.0


async def test_abandoning_a_reply_midway_leaves_the_client_usable(sim: ProviderSim) -> None:
    """Closing the stream after the first delta (barge-in) lets the next request succeed."""
    sim.config.llm_inter_token_ms = 50
    llm = OpenAILanguageModel(sim.endpoint("llm"))
    async with aclosing(llm.stream_chat(HELLO)) as events:
        async for event in events:
            assert isinstance(event, TextDelta)
            break
    sim.config.llm_inter_token_ms = 0
    again = await collect(llm, HELLO)
    await llm.aclose()
    assert isinstance(again[-1], Finished)
