"""The session's side of overlapped turns: when to speculate, and adopting or discarding.

:class:`Speculator` is owned by one :class:`~voicebot.call.session.CallSession`. At the
first short pause inside an utterance (``SpeechPaused``) it recognises the audio so far
and, once its words are in, sets the end-of-turn silence (adaptive endpointing) and starts
the reply, held back from the caller. When the endpointer confirms the turn with no voice
since the pause, :meth:`Speculator.adopt` releases that reply and the turn loop follows it;
voice again (or a key, a stale end, the end of the call) discards it and its requests are
counted as wasted. With streaming recognition the reply starts at the pause on the partial
transcript and the pause's final keeps it (same words) or has it redone.

The parts that keep a held reply harmless (held sink, tool gate, state snapshot) are
:mod:`voicebot.call.speculation`'s; the conversation state, the turn count, the carried
words and the current reply stay the session's. This class keeps only the speculations'
own bookkeeping: the one awaiting its turn's end, those still live, and the discards in
flight (the next turn waits for them: they put the state back).

Failure: a recognition error at the pause takes the held reply back and the turn is
recognised afresh on the whole utterance; nothing a discarded reply did is stored.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from voicebot.audio.endpointing import SpeechPaused
from voicebot.brain.turn_end import TurnEnd, classify_turn_end
from voicebot.call.recognition import joined_words
from voicebot.call.recorder import TurnTimings
from voicebot.call.speculation import HeldSink, Speculation, restore, same_words, snapshot
from voicebot.call.speech_handle import SpeechHandle
from voicebot.errors import ProviderError
from voicebot.providers.base import Transcript

if TYPE_CHECKING:
    from voicebot.call.session import CallSession, UtteranceIn


class Speculator:
    """Speculative replies of one call; every method runs on the call's event loop."""

    def __init__(self, call: CallSession) -> None:
        self._call = call
        self.pending: Speculation | None = None  # made at the open utterance's pause
        self.live: set[Speculation] = set()  # started, neither adopted nor dropped
        self.discards: set[asyncio.Task[None]] = set()

    async def wait_discards(self) -> None:
        """Wait for the discards in flight: the state as it was before their replies."""
        if self.discards:
            await asyncio.wait(set(self.discards))

    def speculate(
        self, event: SpeechPaused, now: float, streamed: asyncio.Future[Transcript] | None
    ) -> None:
        """At a short pause, recognise the utterance so far and start its reply, held.
        With streaming recognition the pause committed the audio so far (``streamed`` is
        its final) and the partial transcript sets the end-of-turn silence at once."""
        call = self._call
        partial = ""
        if call.live_stt is not None:
            partial = call.live_stt.partial_text
            if call.services.settings.adaptive_endpointing:
                call.endpointer.set_turn_silence_ms(self._turn_silence_ms(partial))
        if (
            call._tg is None
            or self.pending is not None
            or not call._awaiting_input
            or not call._inbox.empty()
            or (call.services.recognizer is None and streamed is None)
            or call._ending
            or call.ended.is_set()
        ):
            return
        speech_end_at = now - max(0, call.endpointer.stream_ms - event.end_ms) / 1000
        spec = Speculation(
            audio=event.audio,
            end_ms=event.end_ms,
            started_at=now,
            speech_end_at=speech_end_at,
            carry=call._carry,
            streamed=streamed,
            partial=partial,
        )
        self.pending = spec
        self.live.add(spec)
        spec.task = call._tg.create_task(self._run(spec), name="speculation")

    async def _run(self, spec: Speculation) -> None:
        """Recognise the paused audio and start its reply, held. With streaming
        recognition the reply starts at once on the partial transcript; the commit's final
        then keeps it when it says the same words (:func:`same_words`), else the reply is
        taken back and started again on the final's words."""
        call = self._call
        settings = call.services.settings
        early = call.recognition.words(spec.partial) if spec.streamed is not None else ""
        if early and settings.speculate_on_partial:
            await self._start_reply(spec, early, stt_done_at=time.monotonic())
        try:
            if spec.streamed is not None:
                # Shielded: the same final may answer the turn if this task is cancelled.
                spec.text = call.recognition.words((await asyncio.shield(spec.streamed)).text)
            else:
                spec.text = await call.recognition.recognize(spec.audio)
        except ProviderError as exc:
            spec.error = exc
            await self._retract(spec)  # the turn is recognised afresh
            return
        finally:
            spec.recognised_at = time.monotonic()
            spec.recognised.set()
        if settings.adaptive_endpointing and spec is self.pending:
            call.endpointer.set_turn_silence_ms(self._turn_silence_ms(spec.text))
        partial_replies = call.services.metrics.speculative_partial_replies
        if spec.handle is not None:
            if same_words(early, spec.text):
                partial_replies.labels("kept").inc()
                final = joined_words(spec.carry, spec.text) if spec.carry else spec.text
                spec.handle.confirm_user_text(final)
                return
            partial_replies.labels("redone").inc()
            await self._retract(spec)
        await self._start_reply(spec, spec.text, stt_done_at=spec.recognised_at)

    async def _start_reply(
        self, spec: Speculation, words: str, *, stt_done_at: float | None
    ) -> None:
        """Start the held reply to ``words`` (after the carried words, if any)."""
        call = self._call
        text = joined_words(spec.carry, words) if spec.carry else words
        if not text or spec.dropped:
            return
        await self.wait_discards()  # the state as it was before them
        if spec.dropped or call._tg is None:
            return
        spec.state_before = snapshot(call.state)
        spec.turn_mark = call._turn_seq
        spec.sink = HeldSink(call.playout)
        call._tool_gate.hold()
        timings = TurnTimings(
            started_at=spec.started_at,
            speech_end_at=spec.speech_end_at,
            stt_done_at=stt_done_at,
        )
        handle = SpeechHandle(
            turn_id=call._turn_seq + 1,
            source=lambda: call.brain.respond_stream(call.state, text, now=call._now()),
            timings=timings,
            state=call.state,
            playout=call.playout,
            speaker=call.speaker,
            recorder=call.recorder,
            log=call.log,
            user_text=text,
            interruptible=not call.turn_loop.conversation_over(),
            sink=spec.sink,
        )
        spec.handle = handle
        handle.start(call._tg)

    def _turn_silence_ms(self, text: str) -> int:
        settings = self._call.services.settings
        kind = classify_turn_end(text)
        self._call.services.metrics.turn_end_kinds.labels(kind.value).inc()
        if kind is TurnEnd.COMPLETE:
            return settings.endpoint_short_silence_ms
        if kind is TurnEnd.ANSWERED:
            return settings.endpoint_answer_silence_ms
        if kind is TurnEnd.HESITANT:
            return settings.endpoint_long_silence_ms
        return settings.endpoint_silence_ms

    async def adopt(self, spec: Speculation, item: UtteranceIn) -> bool:
        """The turn the speculation was made on is confirmed: release its reply and follow
        it like any other. False (the caller's words are answered afresh) when there is
        no reply to release, it was made on other grounds (carried words changed, a
        reply came between), or the caller spoke again while it was still being prepared
        (it would start over them: the words are carried to the next utterance)."""
        call = self._call
        if spec.task is not None and not spec.task.done():
            await asyncio.wait({spec.task})  # (even on a done task, wait() takes an iteration)
        handle = spec.handle
        if spec.error is not None:  # recognised afresh on the whole utterance
            self.live.discard(spec)
            call.services.metrics.speculations.labels("stt_failed").inc()
            return False
        if (
            handle is None
            or spec.carry != call._carry
            or spec.turn_mark != call._turn_seq
            or call._spoke_again(item)
        ):
            self.discard(spec, "unused")
            await self.wait_discards()
            return False
        self.live.discard(spec)
        call.services.metrics.speculations.labels("used").inc()
        call._carry = None
        call._turn_seq = handle.turn_id
        call.current = handle
        call._tool_gate.release()
        handle.timings.confirmed_at = time.monotonic()
        if spec.sink is not None:
            spec.sink.release()
            await call.playout.pump()  # the held audio's first frames leave now
        handle.check_played()
        await call.turn_loop.follow(handle)
        return True

    def take_pending(self, end_ms: int) -> Speculation | None:
        """The speculation made on the utterance that just ended at ``end_ms``, if any
        (one made at an earlier pause of it is stale: discarded). None is pending after."""
        spec = self.pending
        self.pending = None
        if spec is not None and spec.end_ms != end_ms:
            self.discard(spec, "stale")
            spec = None
        return spec

    def discard_pending(self, reason: str) -> None:
        spec = self.pending
        self.pending = None
        if spec is not None:
            self.discard(spec, reason)

    def discard_live(self, reason: str) -> None:
        """Discard every speculation still live (the call is ending)."""
        for spec in list(self.live):
            self.discard(spec, reason)

    def discard(self, spec: Speculation, reason: str) -> None:
        """Drop a speculation: its requests are cancelled and counted as wasted, the state
        its reply changed is put back (in a task the next turn waits for)."""
        if spec.dropped:
            return
        spec.dropped = True
        self.live.discard(spec)
        self._call.services.metrics.speculations.labels(reason).inc()
        tg = self._call._tg
        if tg is None:
            return
        task = tg.create_task(self._drop(spec, reason), name="speculation-drop")
        self.discards.add(task)
        task.add_done_callback(self.discards.discard)

    async def _drop(self, spec: Speculation, reason: str) -> None:
        metrics = self._call.services.metrics
        task = spec.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        if reason != "unused":  # an unused speculation's words still answer the turn
            metrics.speculative_wasted_requests.labels("stt").inc()
        await self._retract(spec)

    async def _retract(self, spec: Speculation) -> None:
        """Take back the speculation's held reply, if it has one: cancel it, put the
        conversation state back and count its requests as wasted."""
        handle = spec.handle
        if handle is None:
            return
        call = self._call
        metrics = call.services.metrics
        await handle.discard()
        if spec.sink is not None:
            spec.sink.discard()
        restore(call.state, spec.state_before)
        call._tool_gate.release()
        spec.handle = None
        spec.sink = None
        if call.services.llm is not None:
            metrics.speculative_wasted_requests.labels("llm").inc()
        sentences = [u for u in handle.utterances if u.text]
        metrics.speculative_wasted_requests.labels("tts").inc(len(sentences))
        metrics.speculative_wasted_words.inc(sum(len(u.text.split()) for u in sentences))
