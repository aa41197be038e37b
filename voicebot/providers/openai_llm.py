"""Streaming chat completions with tools over OpenAI's ``/chat/completions`` (``stream=True``).

Content deltas become :class:`TextDelta` events as they arrive; tool-call fragments are
assembled by index and emitted once, complete, as :class:`ToolCallsReady` when the stream
ends. Waiting for the first token is bounded by its own timeout and all waiting on the
provider by the endpoint timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import openai
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallParam,
)

from voicebot.config import ProviderEndpoint
from voicebot.errors import ProviderError
from voicebot.providers.base import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    ChatMessage,
    Finished,
    LLMEvent,
    TextDelta,
    ToolCall,
    ToolCallsReady,
    ToolSpec,
)
from voicebot.providers.budget import Budget
from voicebot.providers.openai_client import CLIENT_ERRORS, make_client, map_error

# How long the first content or tool-call token may take to arrive.
DEFAULT_FIRST_TOKEN_TIMEOUT_S = 3.0
# Finish reason reported when the stream ends without one (connection cut short).
INCOMPLETE_FINISH_REASON = "incomplete"


class OpenAILanguageModel:
    """A :class:`~voicebot.providers.base.LanguageModel` over chat completions."""

    def __init__(
        self,
        endpoint: ProviderEndpoint,
        *,
        first_token_timeout_s: float = DEFAULT_FIRST_TOKEN_TIMEOUT_S,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._first_token_timeout_s = first_token_timeout_s
        self._client = client or make_client(endpoint)

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> AsyncIterator[LLMEvent]:
        """Stream one reply; raises ProviderError or ProviderTimeoutError."""
        budget = Budget(self._endpoint.timeout_s)
        first_token_limit_s: float | None = self._first_token_timeout_s
        try:
            stream = await budget.wait(
                self._client.chat.completions.create(
                    model=self._endpoint.model,
                    messages=[_message_param(m) for m in messages],
                    tools=[_tool_param(t) for t in tools] if tools else openai.omit,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    stream=True,
                ),
                limit_s=first_token_limit_s,
            )
        except CLIENT_ERRORS as exc:
            raise map_error("llm", exc, endpoint=self._endpoint) from exc
        assembler = _ToolCallAssembler()
        finish_reason: str | None = None
        chunks = stream.__aiter__()
        try:
            while True:
                try:
                    chunk = await budget.wait(chunks.__anext__(), limit_s=first_token_limit_s)
                except StopAsyncIteration:
                    break
                except CLIENT_ERRORS as exc:
                    raise map_error("llm", exc, endpoint=self._endpoint) from exc
                text, reason, saw_token = _read_chunk(chunk, assembler)
                if saw_token:
                    first_token_limit_s = None
                if reason:
                    finish_reason = reason
                if text:
                    yield TextDelta(text)
        finally:
            await stream.close()
        calls = assembler.calls()
        if calls:
            yield ToolCallsReady(calls)
        yield Finished(finish_reason or INCOMPLETE_FINISH_REASON)

    async def aclose(self) -> None:
        await self._client.close()


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _ToolCallAssembler:
    """Joins tool-call fragments that arrive across chunks, keyed by their index."""

    def __init__(self) -> None:
        self._partials: dict[int, _PartialCall] = {}

    def add(self, index: int, call_id: str | None, name: str | None, arguments: str | None) -> None:
        partial = self._partials.setdefault(index, _PartialCall())
        if call_id:
            partial.id = call_id
        if name:
            partial.name += name
        if arguments:
            partial.arguments.append(arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        calls = []
        for index in sorted(self._partials):
            partial = self._partials[index]
            if not partial.name:
                raise ProviderError("llm provider sent a tool call without a name")
            calls.append(
                ToolCall(
                    id=partial.id or f"call_{index}",
                    name=partial.name,
                    arguments="".join(partial.arguments) or "{}",
                )
            )
        return tuple(calls)


def _read_chunk(
    chunk: ChatCompletionChunk, assembler: _ToolCallAssembler
) -> tuple[str, str | None, bool]:
    """Return (text, finish reason, whether a content or tool token arrived)."""
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list):
        raise ProviderError("llm provider sent a chunk without choices")
    texts: list[str] = []
    reason: str | None = None
    saw_token = False
    for choice in choices:
        if choice.index != 0:
            continue
        delta = choice.delta
        if delta.content:
            texts.append(delta.content)
            saw_token = True
        for call in delta.tool_calls or ():
            function = call.function
            assembler.add(
                call.index,
                call.id,
                function.name if function else None,
                function.arguments if function else None,
            )
            saw_token = True
        if choice.finish_reason:
            reason = choice.finish_reason
            saw_token = True
    return "".join(texts), reason, saw_token


def _message_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content or ""}
    if message.role == "user":
        return {"role": "user", "content": message.content or ""}
    if message.role == "tool":
        if message.tool_call_id is None:
            raise ProviderError("a tool message needs tool_call_id")
        return {
            "role": "tool",
            "content": message.content or "",
            "tool_call_id": message.tool_call_id,
        }
    calls: list[ChatCompletionMessageToolCallParam] = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in message.tool_calls
    ]
    if calls:
        return {"role": "assistant", "content": message.content, "tool_calls": calls}
    return {"role": "assistant", "content": message.content or ""}


def _tool_param(tool: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }
