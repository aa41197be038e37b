"""Speaking a reply: sentences from the brain's stream → cached or synthesized audio →
the playout, and the fixed phrases every call may need, synthesized ahead of time.

A barge-in calls :meth:`Speaker.interrupt`; from then on nothing of the interrupted
reply reaches the playout, even a sentence whose synthesis was already under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator

from voicebot.audio.codec import FRAME_BYTES_ULAW
from voicebot.brain.base import ConversationState, Reply, ReplyEvent
from voicebot.brain.script import AgentScript
from voicebot.call.playout import Playout
from voicebot.call.recorder import TurnTimings
from voicebot.call.services import CallServices
from voicebot.call.speech import synthesize_all, synthesize_frames
from voicebot.db.booking_tools import DbBookingTools
from voicebot.errors import ProviderError
from voicebot.providers.sentences import split_sentences

APOLOGY_TEXT = "סליחה, לא שמעתי טוב. אפשר לחזור על זה?"
MAX_DURATION_GOODBYE_TEXT = "אנחנו צריכים לסיים כאן. תודה רבה על הזמן, ויום טוב!"


class Speaker:
    """Turns one call's reply streams into queued audio, sentence by sentence."""

    def __init__(self, services: CallServices, playout: Playout) -> None:
        self._services = services
        self._playout = playout
        self._epoch = 0

    def interrupt(self) -> None:
        """Drop the reply being spoken: later sentences and late audio are never queued."""
        self._epoch += 1

    async def speak(
        self,
        events: AsyncGenerator[ReplyEvent, None],
        timings: TurnTimings,
        spoken: list[str],
        final: list[Reply],
    ) -> None:
        """Queue each sentence as it arrives (appending its text to ``spoken``); the final
        :class:`Reply` goes to ``final``. Closing the stream cancels the brain's work."""
        async with contextlib.aclosing(events):
            await self._speak(events, timings, spoken, final)

    async def _speak(
        self,
        events: AsyncGenerator[ReplyEvent, None],
        timings: TurnTimings,
        spoken: list[str],
        final: list[Reply],
    ) -> None:
        epoch = self._epoch
        services, playout = self._services, self._playout
        voice_id = services.tts.voice_id
        async for event in events:
            if isinstance(event, Reply):
                final.append(event)
                break
            if epoch != self._epoch:
                return  # barged in: nothing more of this reply is spoken
            timings.brain_done_at = timings.brain_done_at or time.monotonic()
            timings.llm_first_token_at = timings.llm_first_token_at or event.first_token_at
            sentence = event.text
            spoken.append(sentence)
            utterance = playout.new_utterance(sentence)
            # Memory, else the cache every process shares (the greeting the voice webhook
            # prepared may have been made by another process).
            cached = await services.phrases.lookup(voice_id, sentence)
            if epoch != self._epoch:
                return
            if cached is not None:
                timings.tts_first_byte_at = timings.tts_first_byte_at or time.monotonic()
                playout.push_frames(utterance, _frames(cached))
            else:
                audio: list[bytes] = []
                async for frames in synthesize_frames(services.tts, sentence):
                    if epoch != self._epoch:
                        return
                    timings.tts_first_byte_at = timings.tts_first_byte_at or time.monotonic()
                    playout.push_frames(utterance, frames)
                    audio.extend(frames)
                if services.settings.tts_reuse_sentences:
                    # Rule replies repeat across calls: the next time it costs nothing.
                    services.phrases.remember(voice_id, sentence, b"".join(audio))
            playout.end_utterance(utterance)
            if timings.first_frame_at is None:
                await asyncio.sleep(0)
                timings.first_frame_at = time.monotonic()


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


async def warm_phrases(services: CallServices, texts: list[str]) -> None:
    """Synthesize fixed phrases once so calls play them at no cost."""
    tts = services.tts
    for text in texts:

        async def factory(text: str = text) -> bytes:
            return await synthesize_all(tts, text)

        with contextlib.suppress(ProviderError):
            await services.phrases.get(tts.voice_id, text, factory)
