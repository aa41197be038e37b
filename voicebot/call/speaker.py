"""Speaking a reply: sentences from the brain's stream → cached or synthesized audio →
the playout, with a fault boundary per sentence; and the fixed phrases every call may
need, synthesized ahead of time.

A sentence whose synthesis fails or stalls before its first byte (any
:class:`~voicebot.errors.ProviderError`: an HTTP error, a cut stream, a first-byte
timeout) is spoken again on the fallback voice (espeak-ng); if that fails too, the
cached apology stands in for it. So a TTS fault costs the caller a sentence in another
voice, never the call. When none of the three can speak (TTS down at start-up, so
nothing was cached, and espeak-ng missing) the speaker raises
:class:`~voicebot.errors.VoiceUnavailableError`: the session ends that silent call at
once as ``tts_unavailable``. What was queued is recorded on the :class:`SpeechHandle`, which
alone decides what reaches history and the transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import structlog

from voicebot.audio.codec import FRAME_BYTES_ULAW
from voicebot.brain.base import ConversationState, Reply, ReplyEvent
from voicebot.brain.script import AgentScript
from voicebot.call.playout import Playout, Utterance
from voicebot.call.services import CallServices
from voicebot.call.speech import synthesize_all, synthesize_frames
from voicebot.db.booking_tools import DbBookingTools
from voicebot.errors import ProviderError, VoiceUnavailableError
from voicebot.providers.base import TextToSpeech
from voicebot.providers.sentences import split_sentences

if TYPE_CHECKING:
    from voicebot.call.speech_handle import SpeechHandle

log = structlog.get_logger(__name__)

# The caller's words were not recognised (speech recognition failed): say it again.
APOLOGY_TEXT = "סליחה, לא שמעתי טוב. אפשר לחזור על זה?"
# Our side failed to act on words that were heard (the database, a stalled query): the
# caller is told so, not asked whether they were heard, and the call goes on.
SYSTEM_APOLOGY_TEXT = "סליחה, יש לנו כרגע תקלה טכנית קטנה במערכת. אפשר לנסות שוב?"
MAX_DURATION_GOODBYE_TEXT = "אנחנו צריכים לסיים כאן. תודה רבה על הזמן, ויום טוב!"
# Stands in for a sentence neither voice could synthesize.
TTS_APOLOGY_TEXT = "סליחה, יש לי תקלה קטנה בקו."
# An unexpected fault: the caller hears this instead of a cut line, then the call ends.
ERROR_GOODBYE_TEXT = "סליחה, נתקלתי בתקלה. נחזור אליך בהקדם. יום טוב!"
# The opt-out key: one short sentence, then the hang-up.
OPT_OUT_KEY_TEXT = "הוסרת מהרשימה, יום טוב."
FIXED_PHRASES = (
    APOLOGY_TEXT,
    SYSTEM_APOLOGY_TEXT,
    MAX_DURATION_GOODBYE_TEXT,
    TTS_APOLOGY_TEXT,
    ERROR_GOODBYE_TEXT,
    OPT_OUT_KEY_TEXT,
)


class Speaker:
    """Turns one call's reply streams into queued audio, sentence by sentence."""

    def __init__(self, services: CallServices, playout: Playout) -> None:
        self._services = services
        self._playout = playout

    async def speak(self, events: AsyncGenerator[ReplyEvent, None], handle: SpeechHandle) -> None:
        """Queue each sentence of ``events`` for ``handle`` as it arrives; the final
        :class:`Reply` goes to ``handle.final``. Closing the stream (on return or
        cancellation) cancels the brain's in-flight work."""
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Reply):
                    handle.final = event
                    return
                if handle.interrupted is not None:
                    return  # nothing more of an interrupted reply is spoken
                timings = handle.timings
                timings.brain_done_at = timings.brain_done_at or time.monotonic()
                timings.llm_first_token_at = timings.llm_first_token_at or event.first_token_at
                utterance = handle.sink.new_utterance(event.text)
                handle.utterances.append(utterance)
                await self._sentence(utterance, handle)
                handle.sink.end_utterance(utterance)

    async def _sentence(self, utterance: Utterance, handle: SpeechHandle) -> None:
        """The sentence's audio into the playout: cache, then the voice, then the fallback
        voice, then the cached apology (each step only when the one before failed)."""
        services = self._services
        text = utterance.text
        if await self._push_cached(utterance, services.tts.voice_id, text, handle):
            return
        if handle.interrupted is not None:
            return
        try:
            await self._synthesize(services.tts, utterance, text, handle)
        except ProviderError as exc:
            self._count("tts", exc)
            handle.log.warning("call.tts_failed", error=exc.message, voice="primary")
        else:
            return
        fallback = services.tts_fallback
        if fallback is not None:
            try:
                await self._synthesize(fallback, utterance, text, handle, remember=False)
            except ProviderError as exc:
                self._count("tts_fallback", exc)
                handle.log.warning("call.tts_failed", error=exc.message, voice="fallback")
            else:
                return
        utterance.text = TTS_APOLOGY_TEXT  # what the caller will hear instead
        for voice_id in (services.tts.voice_id, None if fallback is None else fallback.voice_id):
            if voice_id is not None and await self._push_cached(
                utterance, voice_id, TTS_APOLOGY_TEXT, handle
            ):
                return
        utterance.text = ""
        # No voice and nothing cached to stand in: the call has no voice at all.
        raise VoiceUnavailableError(
            "no voice can speak: TTS failed, no fallback voice, no cached apology"
        )

    async def _push_cached(
        self, utterance: Utterance, voice_id: str, text: str, handle: SpeechHandle
    ) -> bool:
        """Queue ``text`` from memory, else from the cache every process shares (the
        greeting the voice webhook prepared may have been made by another process)."""
        cached = await self._services.phrases.lookup(voice_id, text)
        if cached is None or handle.interrupted is not None:
            return False
        timings = handle.timings
        timings.tts_first_byte_at = timings.tts_first_byte_at or time.monotonic()
        handle.sink.push_frames(utterance, _frames(cached))
        await self._pump()
        return True

    async def _synthesize(
        self,
        tts: TextToSpeech,
        utterance: Utterance,
        text: str,
        handle: SpeechHandle,
        *,
        remember: bool = True,
    ) -> None:
        """Stream ``text`` on ``tts`` into the playout; raises ProviderError. Frames of a
        stream that breaks mid-sentence stay queued; the retry speaks the sentence whole."""
        timings = handle.timings
        audio: list[bytes] = []
        async for frames in synthesize_frames(tts, text):
            if handle.interrupted is not None:
                return
            timings.tts_first_byte_at = timings.tts_first_byte_at or time.monotonic()
            handle.sink.push_frames(utterance, frames)
            await self._pump()
            audio.extend(frames)
        if remember and self._services.settings.tts_reuse_sentences:
            # Rule replies repeat across calls: the next time it costs nothing.
            self._services.phrases.remember(tts.voice_id, text, b"".join(audio))

    async def _pump(self) -> None:
        """Frames just queued on the playout leave now when due (a reply's first ones).
        A held reply's (speculative) frames are not on the playout until its release, and
        pass through after it, so they are sent from here too; pumping while they are held
        sends only what the playout would send anyway."""
        await self._playout.pump()

    def _count(self, stage: str, exc: ProviderError) -> None:
        self._services.metrics.provider_errors.labels(stage, exc.code).inc()


def _frames(ulaw: bytes) -> list[bytes]:
    return [ulaw[i : i + FRAME_BYTES_ULAW] for i in range(0, len(ulaw), FRAME_BYTES_ULAW)]


async def prepare_greeting(
    services: CallServices, state: ConversationState, *, script: AgentScript | None = None
) -> None:
    """Synthesize this call's greeting while the voice webhook answers, so the first
    frame goes out as soon as the stream starts (the session reads it from the cache)."""
    tools = DbBookingTools(settings=services.settings, sessions=services.sessions, lead_id=None)
    reply = await services.brain_factory(tools, script=script).greet(
        ConversationState(lead=state.lead)
    )
    await warm_phrases(services, split_sentences(reply.text))


async def warm_phrases(services: CallServices, texts: list[str] | tuple[str, ...]) -> None:
    """Synthesize fixed phrases once so calls play them at no cost (on the fallback voice
    too, so an apology can play while the main voice is down). All at once: start-up
    waits for the slowest phrase, not for their sum."""
    voices = [services.tts]
    if services.tts_fallback is not None:
        voices.append(services.tts_fallback)

    async def warm(tts: TextToSpeech, text: str) -> None:
        async def factory() -> bytes:
            return await synthesize_all(tts, text)

        with contextlib.suppress(ProviderError):
            await services.phrases.get(tts.voice_id, text, factory)

    await asyncio.gather(*(warm(tts, text) for tts in voices for text in texts))
