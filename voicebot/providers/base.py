"""The provider contracts: what the call pipeline and the brain see of STT, LLM and TTS.

Everything here is a plain dataclass or a :class:`~typing.Protocol`; no vendor payload
crosses this line. A new vendor is one module that satisfies one of these Protocols.

Speech recognition has two shapes. A batch :class:`SpeechToText` transcribes a whole
utterance; a :class:`StreamingSpeechToText` opens a :class:`RecognitionStream` that is fed
audio as it arrives; :mod:`voicebot.providers.recognition` adapts a batch recognizer to it.
A :class:`StreamingTranscriber` (``STT_MODE=streaming``) keeps one
:class:`TranscriptionSession` open for the whole call and is fed the caller's μ-law frames
as they arrive; the batch recognizer stands behind it for any utterance it fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

DEFAULT_LANGUAGE = "he"
DEFAULT_TEMPERATURE = 0.4
DEFAULT_MAX_TOKENS = 300


@dataclass(frozen=True, slots=True)
class Transcript:
    """What a recognizer heard in one utterance."""

    text: str
    language: str | None
    duration_ms: int | None


@runtime_checkable
class SpeechToText(Protocol):
    """Transcribes one complete utterance of PCM16 mono little-endian audio."""

    async def transcribe(
        self, pcm16: bytes, *, sample_rate_hz: int, language: str = DEFAULT_LANGUAGE
    ) -> Transcript: ...

    async def aclose(self) -> None: ...


class RecognitionStream(Protocol):
    """One utterance being recognised while it is spoken.

    ``push`` never blocks (it is called once per 20 ms frame); ``partials`` yields interim
    hypotheses until the stream finishes; ``finish`` returns the final transcript;
    ``aclose`` abandons the stream (barge-in, hang-up) and is safe to call twice.
    """

    def push(self, pcm16: bytes) -> None: ...

    def partials(self) -> AsyncIterator[str]: ...

    async def finish(self) -> Transcript: ...

    async def aclose(self) -> None: ...


class StreamingSpeechToText(Protocol):
    """Opens recognition streams; the only recognizer shape the turn loop uses."""

    def open_stream(
        self, *, sample_rate_hz: int, language: str = DEFAULT_LANGUAGE
    ) -> RecognitionStream: ...

    async def aclose(self) -> None: ...


class TranscriptionSession(Protocol):
    """One call's streaming recognizer, fed Twilio's 8 kHz μ-law frames as they arrive.

    ``begin`` opens an utterance (False when the session is down: the utterance is then
    not streamed); ``feed`` never blocks; ``commit`` ends the utterance and returns its
    final transcript as a future that fails with ProviderError (never hangs past the
    provider's final timeout); ``partial_text`` is what has been heard of the open
    utterance so far and ``partials`` yields each change; ``commit(reopen=True)`` commits
    what was fed and keeps the utterance open (speculative recognition at a short pause:
    the next commit's final holds the words after it). ``run`` is the session's
    connection (reconnecting after failures), run by the call's TaskGroup until
    cancelled; ``aclose`` ends it.
    """

    @property
    def ready(self) -> bool: ...

    @property
    def partial_text(self) -> str: ...

    def begin(self) -> bool: ...

    def feed(self, ulaw: bytes) -> None: ...

    def commit(self, *, reopen: bool = False) -> asyncio.Future[Transcript]: ...

    def partials(self) -> AsyncIterator[str]: ...

    async def run(self) -> None: ...

    async def aclose(self) -> None: ...


class StreamingTranscriber(Protocol):
    """Opens one :class:`TranscriptionSession` per call."""

    def open_session(self, *, language: str = DEFAULT_LANGUAGE) -> TranscriptionSession: ...

    async def probe(self) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One function call requested by the model; ``arguments`` is raw JSON as sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation, in the provider-neutral shape."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of assistant text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallsReady:
    """Every tool call of the reply, fully assembled; emitted once, before :class:`Finished`."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    """The reply is complete; ``reason`` is the model's (``stop``, ``tool_calls``, ``length``)."""

    reason: str


LLMEvent: TypeAlias = TextDelta | ToolCallsReady | Finished


class LanguageModel(Protocol):
    """Streams one assistant reply.

    Consume with :func:`contextlib.aclosing` so an abandoned reply (barge-in) releases its
    connection at once.
    """

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> AsyncIterator[LLMEvent]: ...

    async def aclose(self) -> None: ...


class TextToSpeech(Protocol):
    """Streams speech for one piece of text as PCM16 mono little-endian chunks.

    Every chunk holds whole samples at :attr:`sample_rate_hz`. :attr:`voice_id` names the
    voice and its settings, so caches keyed by it never mix voices.
    """

    @property
    def sample_rate_hz(self) -> int: ...

    @property
    def voice_id(self) -> str: ...

    def synthesize(self, text: str) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...
