"""What every call shares in one process: settings, providers, phrase cache, stores, dialer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.brain.base import BookingTools, Brain
from voicebot.brain.machine_speech import MachineKind
from voicebot.brain.script import AgentScript
from voicebot.config import Settings
from voicebot.metrics import Metrics
from voicebot.providers.base import (
    LanguageModel,
    SpeechToText,
    StreamingSpeechToText,
    StreamingTranscriber,
    TextToSpeech,
)
from voicebot.providers.phrase_cache import PhraseCache
from voicebot.store.optout_outbox import OptOutOutbox
from voicebot.store.resilient import ResilientStore


class BrainFactory(Protocol):
    """Builds the brain of one call or conversation, bound to its lead's tools and script
    (the campaign's agent script; the default script when None)."""

    def __call__(self, tools: BookingTools, *, script: AgentScript | None = None) -> Brain: ...


@dataclass
class CallServices:
    settings: Settings
    metrics: Metrics
    sessions: async_sessionmaker[AsyncSession]
    # Each statement commits on its own (voicebot.db.engine.create_autocommit_engine):
    # the turn writes.
    autocommit: async_sessionmaker[AsyncSession]
    store: ResilientStore
    stt: SpeechToText | None
    recognizer: StreamingSpeechToText | None  # the streaming view of ``stt`` the turn loop uses
    llm: LanguageModel | None
    tts: TextToSpeech
    phrases: PhraseCache
    brain_factory: BrainFactory
    dialer: Any = None
    # The first words were a recording: act as on AMD's machine verdict (call SID, kind);
    # True when it acted. Set by the web app (voicebot.api.twilio_amd.transcript_machine).
    on_machine_speech: Callable[[str, MachineKind], Awaitable[bool]] | None = None
    tts_fallback: TextToSpeech | None = None  # speaks a sentence the main voice failed
    # STT_MODE=streaming: one session per call, fed as the caller speaks; ``recognizer``
    # (batch) transcribes any utterance it fails.
    streaming_stt: StreamingTranscriber | None = None
    # Opt-outs the database refused wait here for the sweeper (None: the tool raises).
    optouts: OptOutOutbox | None = None
