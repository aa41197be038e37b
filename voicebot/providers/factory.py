"""Builds the process's providers from Settings; owned and closed by the app lifespan.

A stage whose endpoint is configured uses OpenAI (or the compatible server its base URL
names); otherwise STT and the LLM are off (the brain falls back to rules) and speech comes
from espeak-ng. With OpenAI TTS, espeak-ng (when installed) is the fallback voice. With
``STT_MODE=streaming`` calls also get a Realtime transcription session on the STT endpoint;
the batch recognizer stays as its fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

from voicebot.config import Settings
from voicebot.providers.base import (
    LanguageModel,
    SpeechToText,
    StreamingSpeechToText,
    StreamingTranscriber,
    TextToSpeech,
)
from voicebot.providers.espeak_tts import EspeakTextToSpeech
from voicebot.providers.openai_llm import OpenAILanguageModel
from voicebot.providers.openai_realtime_stt import RealtimeTranscriber
from voicebot.providers.openai_stt import OpenAISpeechToText
from voicebot.providers.openai_tts import OpenAITextToSpeech
from voicebot.providers.phrase_cache import PhraseCache
from voicebot.providers.recognition import BatchRecognizer


@dataclass(slots=True)
class Providers:
    """The STT, LLM and TTS backends of one process."""

    stt: SpeechToText | None
    llm: LanguageModel | None
    tts: TextToSpeech
    tts_fallback: TextToSpeech | None
    tts_available: bool = True
    stt_streaming: StreamingTranscriber | None = None

    @property
    def recognizer(self) -> StreamingSpeechToText | None:
        """The streaming view of ``stt`` the turn loop uses (None when STT is off)."""
        return None if self.stt is None else BatchRecognizer(self.stt)

    def describe(self) -> dict[str, str]:
        """Which backend serves each stage, for /health/info (no URLs, no keys)."""
        return {
            "stt": "off" if self.stt is None else type(self.stt).__name__,
            "stt_streaming": "off"
            if self.stt_streaming is None
            else type(self.stt_streaming).__name__,
            "llm": "off" if self.llm is None else type(self.llm).__name__,
            "tts": type(self.tts).__name__ if self.tts_available else "off",
            "tts_fallback": "off"
            if self.tts_fallback is None
            else type(self.tts_fallback).__name__,
        }

    async def aclose(self) -> None:
        """Close every client; safe to call once at shutdown."""
        for provider in (self.stt_streaming, self.stt, self.llm, self.tts, self.tts_fallback):
            if provider is not None:
                await provider.aclose()


def build_providers(settings: Settings) -> Providers:
    """Create (but do not connect) the providers the settings describe."""
    stt_endpoint = settings.provider("stt")
    llm_endpoint = settings.provider("llm")
    tts_endpoint = settings.provider("tts")
    espeak_ready = EspeakTextToSpeech.available()
    espeak = EspeakTextToSpeech(voice=settings.espeak_voice)
    stt = OpenAISpeechToText(stt_endpoint) if stt_endpoint.configured else None
    llm = OpenAILanguageModel(llm_endpoint) if llm_endpoint.configured else None
    streaming = None
    if stt is not None and settings.stt_mode == "streaming":
        streaming = RealtimeTranscriber(
            stt_endpoint,
            model=settings.stt_streaming_model,
            final_timeout_s=settings.stt_streaming_final_timeout_s,
        )
    if tts_endpoint.configured:
        return Providers(
            stt=stt,
            llm=llm,
            tts=OpenAITextToSpeech(tts_endpoint, voice=settings.tts_voice),
            tts_fallback=espeak if espeak_ready else None,
            stt_streaming=streaming,
        )
    return Providers(
        stt=stt,
        llm=llm,
        tts=espeak,
        tts_fallback=None,
        tts_available=espeak_ready,
        stt_streaming=streaming,
    )


def build_phrase_cache(settings: Settings) -> PhraseCache:
    """The process-wide phrase cache, persisted under ``tts_cache_dir``."""
    return PhraseCache(
        directory=settings.tts_cache_dir, max_disk_bytes=settings.tts_cache_max_bytes
    )
