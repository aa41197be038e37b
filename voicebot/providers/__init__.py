"""STT, LLM and TTS backends behind small Protocols (see :mod:`voicebot.providers.base`)."""

from __future__ import annotations

from voicebot.providers.base import (
    ChatMessage,
    Finished,
    LanguageModel,
    LLMEvent,
    RecognitionStream,
    SpeechToText,
    StreamingSpeechToText,
    TextDelta,
    TextToSpeech,
    ToolCall,
    ToolCallsReady,
    ToolSpec,
    Transcript,
)
from voicebot.providers.factory import Providers, build_phrase_cache, build_providers
from voicebot.providers.phrase_cache import PhraseCache
from voicebot.providers.recognition import BatchRecognizer, BufferedRecognitionStream
from voicebot.providers.sentences import SentenceSplitter

__all__ = [
    "BatchRecognizer",
    "BufferedRecognitionStream",
    "ChatMessage",
    "Finished",
    "LLMEvent",
    "LanguageModel",
    "PhraseCache",
    "Providers",
    "RecognitionStream",
    "SentenceSplitter",
    "SpeechToText",
    "StreamingSpeechToText",
    "TextDelta",
    "TextToSpeech",
    "ToolCall",
    "ToolCallsReady",
    "ToolSpec",
    "Transcript",
    "build_phrase_cache",
    "build_providers",
]
