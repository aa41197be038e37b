"""The turn loop of one call: greet, then answer each utterance, key or silence in turn.

:class:`TurnLoop` is owned by one :class:`~voicebot.call.session.CallSession` and acts on
its state. :meth:`TurnLoop.run` greets the caller, then takes the caller's inputs from the
session's inbox one at a time: an utterance (recognised, screened for a machine if it is
the first, answered by an adopted speculative reply or a fresh one), a key (coalesced, the
opt-out confirmed) or both sides' silence for ``silence_checkin_s`` (a check-in). Every
reply is a :class:`~voicebot.call.speech_handle.SpeechHandle`; :meth:`TurnLoop.follow`
waits until it was heard or interrupted, checkpoints the conversation, stores the turn and
ends the call when the brain said so (a reply the caller cut never ends it).

Failure: a failed recognition is answered with the cached "say it again" apology, a
brain's I/O error (a tool's query, its timeout) with the cached technical-problem
apology, and the call goes on; no voice at all ends the call
(``tts_unavailable``); any other exception is logged once (``call.unexpected_error``)
and the caller hears a goodbye before the hang-up.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from voicebot.brain.base import Reply
from voicebot.brain.rules import DTMF_INTENTS
from voicebot.brain.state import ENDED as ENDED_STAGE
from voicebot.call.ending import PLAYOUT_MARGIN_S, brain_end_reason
from voicebot.call.keys import DtmfIn, coalesce_keys, key_reply
from voicebot.call.recognition import joined_words
from voicebot.call.recorder import TurnTimings
from voicebot.call.screening import screen_first_words
from voicebot.call.speaker import APOLOGY_TEXT, ERROR_GOODBYE_TEXT, SYSTEM_APOLOGY_TEXT
from voicebot.call.speech_handle import ReplySource, SpeechHandle, fixed, from_reply
from voicebot.errors import ProviderError, VoiceUnavailableError

if TYPE_CHECKING:
    from voicebot.call.session import CallSession, UtteranceIn

# A brain's I/O failing (a tool's query, its timeout): the turn is apologised for.
BRAIN_IO_ERRORS = (SQLAlchemyError, TimeoutError, OSError)
HOLD_INTENT = "hold"
"""The reply to a caller asking the agent to wait ("רגע", "שנייה"): RuleBrain's hold."""
HOLD_SILENCE_FACTOR = 4
"""After a hold reply the first check-in waits this many times ``silence_checkin_s``
(32 s at the default 8 s): the caller is looking something up, not gone."""


class TurnLoop:
    """The turns of one call; the conversation state, the inbox, the turn count, the
    carried words and the current reply stay the session's."""

    def __init__(self, call: CallSession) -> None:
        self._call = call

    def start_greeting(self) -> SpeechHandle:
        """Start the greeting's generation (the call's first reply) for :meth:`run`."""
        call = self._call
        return self.start_handle(
            from_reply(lambda: call.brain.greet(call.state)),
            TurnTimings(started_at=call.started_at),
        )

    async def run(self, greeting: SpeechHandle) -> None:
        """Follow ``greeting`` (:meth:`start_greeting`), then take the caller's turns
        until the call ends."""
        call = self._call
        try:
            await self._turns_until_end(greeting)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The one place an unexpected fault is logged; the caller hears a goodbye.
            call.log.exception("call.unexpected_error")
            await call.end_politely("internal_error", ERROR_GOODBYE_TEXT)

    async def _turns_until_end(self, greeting: SpeechHandle) -> None:
        call = self._call
        await self.follow(greeting)
        silences, held = 0, False
        while not call.ended.is_set():
            item = await self._next_input(held=held)
            held = False
            if item is None:
                silences += 1
                await self.speak(
                    from_reply(partial(self._silence_reply, silences)),
                    TurnTimings(started_at=time.monotonic()),
                )
                continue
            silences = 0
            if isinstance(item, DtmfIn):
                digit = coalesce_keys(call._inbox, item.digit, call.log)
                # The opt-out's confirmation is not cut by more keys or speech: its
                # hang-up stands (a caller leaning on the keypad withdrew it forever).
                await self.speak(
                    from_reply(partial(key_reply, call.brain, call.state, digit, call._now)),
                    TurnTimings(started_at=time.monotonic()),
                    interruptible=DTMF_INTENTS.get(digit) != "remove_me",
                )
                continue
            await self._handle_utterance(item)
            reply = call.current.final if call.current is not None else None
            held = reply is not None and reply.intent == HOLD_INTENT

    async def _silence_reply(self, count: int) -> Reply:
        call = self._call
        return await call.brain.on_silence(call.state, count=count, now=call._now())

    async def _next_input(self, *, held: bool = False) -> UtteranceIn | DtmfIn | None:
        """The caller's next utterance or key, or None once both sides have been silent
        for ``silence_checkin_s`` (the agent's own speech and the caller's never count),
        ``HOLD_SILENCE_FACTOR`` times that when the caller asked the agent to wait."""
        call = self._call
        checkin_s = call.services.settings.silence_checkin_s
        if held:
            checkin_s *= HOLD_SILENCE_FACTOR
        while True:
            quiet_since = self._quiet_since()
            wait_s = checkin_s
            if quiet_since is not None:
                wait_s = quiet_since + checkin_s - time.monotonic()
                if wait_s <= 0:
                    return None
            call._awaiting_input = True
            try:
                item = await asyncio.wait_for(call._inbox.get(), timeout=wait_s)
            except TimeoutError:
                continue
            finally:
                call._awaiting_input = False
            await call.speculator.wait_discards()  # the state before a dropped reply
            return item

    def _quiet_since(self) -> float | None:
        """When the line fell silent (agent done playing, caller done speaking); None while
        either is talking."""
        call = self._call
        if call.playout.speaking or call.endpointer.in_speech:
            return None
        return max(call.playout.idle_since, call._caller_quiet_since)

    async def _handle_utterance(self, item: UtteranceIn) -> None:
        call = self._call
        spec = item.speculation
        known: str | None = None  # the words the machine check recognised
        if call._screening:
            # The one place both paths meet before a reply to the utterance is heard: a
            # speculative reply is still held here (released only by the adoption below).
            known = await screen_first_words(call, item)
            if call.ended.is_set() or call._machine:
                return
        if spec is not None and await call.speculator.adopt(spec, item):
            return
        timings = TurnTimings(started_at=item.decided_at, speech_end_at=item.speech_end_at)
        try:
            if spec is not None and spec.text is not None:
                text = spec.text  # recognised at the pause; the reply was stale
                timings.started_at = spec.started_at
                timings.stt_done_at = spec.recognised_at
            elif known is not None:
                text = known
                timings.stt_done_at = time.monotonic()
            else:
                text = await call.recognition.utterance_text(item.transcript, item.audio)
                timings.stt_done_at = time.monotonic()
        except ProviderError as exc:
            call.services.metrics.provider_errors.labels("stt", exc.code).inc()
            call.log.warning("call.stt_failed", error=exc.message)
            await self.speak(fixed(_apology()), timings)
            return
        if call._carry:
            text = joined_words(call._carry, text)
            call._carry = None
        if not text:
            return
        if call._spoke_again(item):
            # The caller went on before any reply to these words began: they are answered
            # with the next utterance, as when a reply is dropped unplayed.
            call._carry = text
            call.log.info("call.reply_dropped", reason="caller_spoke", turn=call._turn_seq + 1)
            return
        await self.speak(
            lambda: call.brain.respond_stream(call.state, text, now=call._now()),
            timings,
            user_text=text,
        )

    def start_handle(
        self,
        source: ReplySource,
        timings: TurnTimings,
        *,
        user_text: str | None = None,
        interruptible: bool = True,
    ) -> SpeechHandle:
        call = self._call
        if call._tg is None:
            raise RuntimeError("a reply needs the running call")
        call._turn_seq += 1
        handle = SpeechHandle(
            turn_id=call._turn_seq,
            source=source,
            timings=timings,
            state=call.state,
            playout=call.playout,
            speaker=call.speaker,
            recorder=call.recorder,
            log=call.log,
            user_text=user_text,
            interruptible=interruptible and not self.conversation_over(),
        )
        call.current = handle
        handle.start(call._tg)
        return handle

    def conversation_over(self) -> bool:
        """The brain already ended the conversation (an opt-out, a booking's goodbye that
        the caller cut): whatever the caller adds is answered by a goodbye that hangs up.
        That goodbye is not interruptible, else a caller talking or pressing keys over
        each goodbye would withdraw each hang-up and hold the call open until max
        duration."""
        call = self._call
        return call.state.stage == ENDED_STAGE

    async def speak(
        self,
        source: ReplySource,
        timings: TurnTimings,
        *,
        user_text: str | None = None,
        interruptible: bool = True,
    ) -> None:
        """Speak one reply through its handle and wait until it was heard or interrupted;
        then store the turn, and end the call if the brain said so."""
        handle = self.start_handle(
            source, timings, user_text=user_text, interruptible=interruptible
        )
        await self.follow(handle)

    async def follow(self, handle: SpeechHandle) -> None:
        """Wait until ``handle`` (the current reply) was heard or interrupted; then store
        the turn, and end the call if the brain said so."""
        call = self._call
        await handle.wait_generated()
        end = handle.end_request
        if end is not None and not handle.interruptible:
            # An end no caller can withdraw (the opt-out's confirmation, the goodbye after
            # the conversation ended) is the call's end from here: a way out taken while
            # it plays (the inbound stream stopping, the duration limit) came second.
            call.endings.record(brain_end_reason(end))
        if not handle.committed:
            await self._save_state(handle)  # the caller's words, while the reply plays
        if handle.error is not None and not handle.committed:
            await handle.interrupt("error")
        if not await handle.wait_played(handle.audio_s + PLAYOUT_MARGIN_S):
            # Twilio never echoed the marks: what the playout clock says has played was
            # heard (the reply is not stored as interrupted); the rest is cut.
            if call.playout.expire_marks():
                call.log.warning("call.marks_lost", turn=handle.turn_id)
                handle.check_played()
            await handle.interrupt("marks_lost")
        await self._persist()
        if handle.dropped_user_text:
            call._carry = handle.dropped_user_text
        if isinstance(handle.error, VoiceUnavailableError):
            await call.endings.end_voiceless(handle.error)
            return
        if isinstance(handle.error, BRAIN_IO_ERRORS):
            # A tool's query failed or stalled past its timeout: the words were heard, our
            # side failed; say so, go on.
            call.log.warning(
                "call.brain_io_failed", error=type(handle.error).__name__, turn=handle.turn_id
            )
            await self.speak(
                fixed(_apology(SYSTEM_APOLOGY_TEXT, "system_error")),
                TurnTimings(started_at=time.monotonic()),
            )
            return
        if handle.error is not None:
            raise handle.error
        end = handle.end_request
        if end is not None:
            await call.endings.finish(end)
        elif handle.final is not None and handle.final.end_call and handle.cut_by_caller:
            call.log.info("call.end_withdrawn", turn=handle.turn_id, reason=handle.interrupted)

    async def _persist(self) -> None:
        call = self._call
        if not await call.stream_claimed():
            return  # another stream's call: nothing of this one is stored
        await self._save_state(None)
        call.services.metrics.turns.inc()
        await call.recorder.flush()

    async def _save_state(self, playing: SpeechHandle | None) -> None:
        """Checkpoint the conversation to the turn store; the reply still ``playing`` is
        left out of it (only the heard part is ever stored, at its commit)."""
        call = self._call
        if not await call.stream_claimed():
            return
        data = call.state.to_dict()
        if playing is not None:
            mark = playing.history_mark
            data["history"] = [
                turn
                for index, turn in enumerate(data["history"])
                if index < mark or turn["role"] != "assistant"
            ]
        await call.services.store.save(
            call.call_sid, data, ttl_s=call.services.settings.turn_state_ttl_s
        )


def _apology(text: str = APOLOGY_TEXT, intent: str = "provider_error") -> Reply:
    return Reply(text=text, intent=intent, actions=(), end_call=False, transfer=False)
