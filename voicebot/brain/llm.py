"""LLMBrain: the conversation driven by a chat model with tools, the rule brain behind it.

Owns one turn of an LLM conversation: the prompt (:mod:`.prompt`), the streamed reply
cut into spoken sentences as they complete, tool calls run through :class:`Toolbox`
with their results sent back (bounded rounds), and the fallback. When the model fails
(provider error, timeout, malformed stream, no usable text, junk that is not Hebrew,
tool arguments that are not JSON twice) before a sentence was spoken, the same turn is
answered by the :class:`~voicebot.brain.rules.RuleBrain` on the same state and tools, so
the caller hears an ordinary reply; after a sentence was spoken, the turn ends with what
was said. A tool that acted and was not followed by the model's own words (the model
failed or fell silent) is followed by its fixed phrase: the booking confirmed, the
offered slots named, the goodbye said.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from voicebot.brain import state as st
from voicebot.brain.base import (
    Action,
    BookingTools,
    ChatTurn,
    ConversationState,
    Reply,
    ReplyEvent,
    Sentence,
    stream_of,
)
from voicebot.brain.llm_text import speakable
from voicebot.brain.llm_toolbox import Toolbox, TurnEffects
from voicebot.brain.llm_tools import TOOL_SPECS
from voicebot.brain.prompt import MAX_REPLY_SENTENCES, build_system_prompt
from voicebot.brain.rules import RuleBrain
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar
from voicebot.brain.speech_text import to_spoken
from voicebot.errors import ProviderError, ProviderTimeoutError
from voicebot.metrics import Metrics
from voicebot.providers.base import (
    ChatMessage,
    LanguageModel,
    LLMEvent,
    TextDelta,
    ToolCallsReady,
)
from voicebot.providers.sentences import SentenceSplitter

REPLY_MAX_TOKENS = 150  # one or two spoken sentences, with room for a tool call
REPLY_TEMPERATURE = 0.3
# Spoken pieces kept from one reply: sentences, or clauses cut early at a comma.
MAX_SPOKEN_PIECES = MAX_REPLY_SENTENCES + 2
MAX_LLM_ROUNDS = 3  # model requests in one turn: the reply, and answers to tool results
MAX_BAD_JSON_ROUNDS = 1  # tool arguments that are not JSON are sent back once, then fallback
MAX_PROMPT_TURNS = 24  # history turns sent to the model (the latest ones)
DEFAULT_FIRST_SENTENCE_TIMEOUT_S = 4.0  # until the first sentence; then the rule brain answers
DEFAULT_TURN_TIMEOUT_S = 12.0  # the whole turn, tools included

log = structlog.get_logger(__name__)


class LLMUnusableError(Exception):
    """The model's answer for this turn cannot be used; ``reason`` names why (a metric label)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Turn:
    state: ConversationState
    user_text: str
    now: datetime
    started_s: float
    first_token_at: float | None = None
    spoken: list[str] = field(default_factory=list)
    effects: TurnEffects = field(default_factory=TurnEffects)
    # The fixed words of a tool's effect the model has not followed with words of its own.
    unsaid_closing: str | None = None

    def reply(self) -> Reply:
        effects = self.effects
        actions = list(effects.actions)
        if effects.end_call:
            actions.append(Action("end_call", {"outcome": self.state.outcome}))
        return Reply(
            text=" ".join(self.spoken),
            intent=effects.intent or "llm",
            actions=tuple(actions),
            end_call=effects.end_call,
            transfer=effects.transfer,
        )


class LLMBrain:
    """A :class:`~voicebot.brain.base.Brain` over a chat model, for one call and one lead.

    ``greet``, ``on_dtmf`` and ``on_silence`` use the rule brain's fixed phrasing: it is
    instant and cacheable as audio, and those moments need no model.
    """

    def __init__(
        self,
        *,
        llm: LanguageModel,
        fallback: RuleBrain,
        tools: BookingTools,
        calendar: BusinessCalendar,
        script: AgentScript | None = None,
        metrics: Metrics | None = None,
        first_sentence_timeout_s: float = DEFAULT_FIRST_SENTENCE_TIMEOUT_S,
        turn_timeout_s: float = DEFAULT_TURN_TIMEOUT_S,
    ) -> None:
        self._llm = llm
        self._fallback = fallback
        self._cal = calendar
        self._script = script or AgentScript.default()
        self._toolbox = Toolbox(tools=tools, calendar=calendar, script=self._script)
        self._metrics = metrics
        self._first_sentence_timeout_s = first_sentence_timeout_s
        self._turn_timeout_s = turn_timeout_s

    async def greet(self, state: ConversationState) -> Reply:
        return await self._fallback.greet(state)

    async def on_dtmf(self, state: ConversationState, digit: str, *, now: datetime) -> Reply:
        return await self._fallback.on_dtmf(state, digit, now=now)

    async def on_silence(self, state: ConversationState, *, count: int, now: datetime) -> Reply:
        return await self._fallback.on_silence(state, count=count, now=now)

    async def respond(self, state: ConversationState, user_text: str, *, now: datetime) -> Reply:
        """The whole reply at once (text API, ``<Gather>`` turns): all of it is delivered,
        so all of it goes into the history."""
        mark = len(state.history)
        async with aclosing(self.respond_stream(state, user_text, now=now)) as events:
            async for event in events:
                if isinstance(event, Reply):
                    reply = event
                    break
            else:
                raise AssertionError("respond_stream ended without a Reply")
        said = any(turn.role == "assistant" for turn in state.history[mark:])
        if reply.text and not said:
            state.history.append(ChatTurn(role="assistant", content=reply.text))
        return reply

    async def respond_stream(
        self, state: ConversationState, user_text: str, *, now: datetime
    ) -> AsyncGenerator[ReplyEvent, None]:
        """Sentences as the model completes them, then the Reply; see the module docstring."""
        if state.stage == st.ENDED:
            async for event in stream_of(await self._fallback.respond(state, user_text, now=now)):
                yield event
            return
        turn = _Turn(state, user_text, now, time.monotonic())
        handed_over = False
        try:
            failure: LLMUnusableError | None = None
            try:
                async with aclosing(self._converse(turn)) as sentences:
                    async for sentence in sentences:
                        turn.spoken.append(sentence.text)
                        turn.unsaid_closing = None
                        yield sentence
            except LLMUnusableError as exc:
                failure = exc
                self._count_fallback(turn, exc.reason)
            if failure is not None and not turn.spoken and not turn.effects.actions:
                handed_over = True
                reply = await self._fallback.respond(state, user_text, now=now)
                async for event in stream_of(reply):
                    yield event
                return
            if turn.unsaid_closing:
                closing = to_spoken(turn.unsaid_closing)
                turn.spoken.append(closing)
                yield Sentence(closing)
            if not turn.effects.actions:
                self._track_stage(state, " ".join(turn.spoken))
            yield turn.reply()
        finally:
            # The caller's words only: what of the reply reaches the history is what was
            # heard, written by whoever delivered it (the call's SpeechHandle, respond()).
            if not handed_over:
                state.history.append(ChatTurn(role="user", content=user_text))

    async def _converse(self, turn: _Turn) -> AsyncGenerator[Sentence, None]:
        """Model rounds until a reply without tool calls; raises LLMUnusableError."""
        messages = self._messages(turn)
        bad_json_rounds = 0
        for _ in range(MAX_LLM_ROUNDS):
            text_parts: list[str] = []
            splitter = SentenceSplitter()
            ready: ToolCallsReady | None = None
            stream = self._llm.stream_chat(
                messages,
                tools=TOOL_SPECS,
                temperature=REPLY_TEMPERATURE,
                max_tokens=REPLY_MAX_TOKENS,
            )
            async with _closing(stream):
                while (event := await self._next(stream, turn)) is not None:
                    turn.first_token_at = turn.first_token_at or time.monotonic()
                    if isinstance(event, TextDelta):
                        text_parts.append(event.text)
                        for sentence in splitter.feed(event.text):
                            if (spoken := self._accept(sentence, turn)) is not None:
                                yield spoken
                    elif isinstance(event, ToolCallsReady):
                        ready = event
            rest = splitter.flush()
            if rest and (spoken := self._accept(rest, turn)) is not None:
                yield spoken
            if ready is None or turn.effects.terminal:
                if not turn.spoken and not turn.unsaid_closing:
                    raise LLMUnusableError("empty_reply")
                return
            content = "".join(text_parts) or None
            messages.append(ChatMessage("assistant", content=content, tool_calls=ready.calls))
            any_bad_json = False
            for call in ready.calls:
                outcome = await self._toolbox.run(call, turn.state, turn.effects, now=turn.now)
                any_bad_json = any_bad_json or outcome.bad_json
                turn.unsaid_closing = outcome.closing or turn.unsaid_closing
                log.info("brain.tool_called", tool=call.name, ok=outcome.result.get("ok"))
                messages.append(ChatMessage("tool", outcome.message(), tool_call_id=call.id))
            if any_bad_json:
                bad_json_rounds += 1
                if bad_json_rounds > MAX_BAD_JSON_ROUNDS:
                    raise LLMUnusableError("bad_tool_arguments")
        if not turn.spoken and not turn.unsaid_closing:
            raise LLMUnusableError("too_many_tool_rounds")

    async def _next(self, stream: AsyncIterator[LLMEvent], turn: _Turn) -> LLMEvent | None:
        """The next model event under the turn's deadline; None at the end of the stream."""
        limit_s = self._turn_timeout_s if turn.spoken else self._first_sentence_timeout_s
        remaining_s = turn.started_s + limit_s - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining_s, 0.0)):
                return await anext(stream)
        except StopAsyncIteration:
            return None
        except ProviderTimeoutError as exc:
            raise LLMUnusableError("timeout") from exc
        except TimeoutError as exc:
            raise LLMUnusableError("timeout") from exc
        except ProviderError as exc:
            raise LLMUnusableError("provider_error") from exc

    def _accept(self, sentence: str, turn: _Turn) -> Sentence | None:
        """The sentence as it will be spoken, None past the length cap; junk is a failure."""
        if len(turn.spoken) >= MAX_SPOKEN_PIECES:
            return None
        spoken = speakable(sentence)
        if spoken is None:
            raise LLMUnusableError("not_hebrew")
        return Sentence(spoken, first_token_at=turn.first_token_at)

    def _track_stage(self, state: ConversationState, said: str) -> None:
        """Keep the rule brain's stage meaningful after a model turn that only talked, so a
        fallback next turn continues the conversation: asking a qualifying question of the
        script puts the state at that question; a greeting stage moves on to permission."""
        if state.stage == st.GREETING:
            state.stage = st.PERMISSION
        for index, question in enumerate(self._script.qualifying_questions):
            if to_spoken(question.strip().rstrip("?").strip()) in said:  # said is spoken form
                state.stage, state.qualify_index = st.QUALIFY, index

    def _messages(self, turn: _Turn) -> list[ChatMessage]:
        state = turn.state
        prompt = build_system_prompt(self._script, state, now=turn.now, calendar=self._cal)
        messages = [ChatMessage("system", prompt)]
        if not state.history or state.history[0].role != "assistant":
            name = state.lead.name if state.lead else None
            messages.append(ChatMessage("assistant", self._script.render_greeting(name)))
        messages.extend(ChatMessage(t.role, t.content) for t in state.history[-MAX_PROMPT_TURNS:])
        messages.append(ChatMessage("user", turn.user_text))
        return messages

    def _count_fallback(self, turn: _Turn, reason: str) -> None:
        log.warning(
            "brain.llm_fallback",
            reason=reason,
            spoken_sentences=len(turn.spoken),
            acted=[a.kind for a in turn.effects.actions],
            elapsed_ms=round((time.monotonic() - turn.started_s) * 1000),
        )
        if self._metrics is not None:
            self._metrics.provider_errors.labels("llm", f"fallback_{reason}").inc()


@asynccontextmanager
async def _closing(stream: AsyncIterator[LLMEvent]) -> AsyncIterator[AsyncIterator[LLMEvent]]:
    """Close an abandoned model stream at once (barge-in, timeout), releasing its connection."""
    try:
        yield stream
    finally:
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()
