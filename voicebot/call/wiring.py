"""Builds the per-process call services from Settings (called by the app lifespan)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.brain.base import BookingTools, Brain
from voicebot.brain.rules import RuleBrain
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar
from voicebot.call.services import CallServices
from voicebot.config import Settings
from voicebot.metrics import Metrics
from voicebot.providers.factory import Providers
from voicebot.providers.phrase_cache import PhraseCache
from voicebot.store.resilient import ResilientStore
from voicebot.telephony.rest import TwilioDialer


def build_call_services(
    settings: Settings,
    *,
    metrics: Metrics,
    sessions: async_sessionmaker[AsyncSession],
    store: ResilientStore,
    providers: Providers,
) -> CallServices:
    calendar = BusinessCalendar.from_settings(settings)

    def brain_factory(tools: BookingTools, *, script: AgentScript | None = None) -> Brain:
        return RuleBrain(tools=tools, calendar=calendar, script=script)

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
        store=store,
        stt=providers.stt,
        llm=providers.llm,
        tts=providers.tts,
        phrases=PhraseCache(directory=settings.tts_cache_dir),
        brain_factory=brain_factory,
        dialer=dialer,
    )
