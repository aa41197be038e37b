"""Builds the per-process call services from Settings (called by the app lifespan).

The brain of a call is the LLM brain when an LLM endpoint is configured (the rule brain
stands behind it for every turn the model cannot answer), else the rule brain alone.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.brain.base import BookingTools, Brain
from voicebot.brain.llm import DEFAULT_FIRST_SENTENCE_TIMEOUT_S, LLMBrain
from voicebot.brain.rules import RuleBrain
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar
from voicebot.call.services import CallServices
from voicebot.config import Settings
from voicebot.metrics import Metrics
from voicebot.providers.factory import Providers
from voicebot.providers.phrase_cache import PhraseCache, SharedPhrases
from voicebot.store.resilient import ResilientStore
from voicebot.telephony.rest import TwilioDialer


def build_call_services(
    settings: Settings,
    *,
    metrics: Metrics,
    sessions: async_sessionmaker[AsyncSession],
    autocommit: async_sessionmaker[AsyncSession],
    store: ResilientStore,
    providers: Providers,
    shared_phrases: SharedPhrases | None = None,
) -> CallServices:
    """``shared_phrases`` (Redis) lets every process find the phrases one of them made."""
    calendar = BusinessCalendar.from_settings(settings)
    llm = providers.llm
    first_sentence_timeout_s = min(settings.llm_timeout_s, DEFAULT_FIRST_SENTENCE_TIMEOUT_S)

    def brain_factory(tools: BookingTools, *, script: AgentScript | None = None) -> Brain:
        rules = RuleBrain(
            tools=tools,
            calendar=calendar,
            script=script,
            silence_max_prompts=settings.silence_max_prompts,
        )
        if llm is None:
            return rules
        return LLMBrain(
            llm=llm,
            fallback=rules,
            tools=tools,
            calendar=calendar,
            script=script,
            metrics=metrics,
            first_sentence_timeout_s=first_sentence_timeout_s,
        )

    dialer = None
    if settings.twilio_account_sid and settings.twilio_auth_token:
        dialer = TwilioDialer(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value(),
            api_base_url=settings.twilio_api_base_url,
        )
    return CallServices(
        settings=settings,
        metrics=metrics,
        sessions=sessions,
        autocommit=autocommit,
        store=store,
        stt=providers.stt,
        recognizer=providers.recognizer,
        llm=llm,
        tts=providers.tts,
        phrases=PhraseCache(
            directory=settings.tts_cache_dir,
            max_disk_bytes=settings.tts_cache_max_bytes,
            shared=shared_phrases,
        ),
        brain_factory=brain_factory,
        dialer=dialer,
        tts_fallback=providers.tts_fallback,
        streaming_stt=providers.stt_streaming,
    )
