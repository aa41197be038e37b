"""One live call: receive path, turn loop and playout, owned by one TaskGroup.

The session speaks only in plain dataclasses: the media route parses Twilio JSON
into events and hands over callables that send `media`, `mark` and `clear`. Every agent
reply is a :class:`~voicebot.call.speech_handle.SpeechHandle` (it owns the reply's
generation and writes the turn as heard); taking turns (barge-in, keys, silence,
endings) is this module's.

Turn taking:

* caller speech over agent audio interrupts the reply (`clear`; only the heard part is
  kept); so does a key, which is then acted on;
* the caller speaking again before a reply started playing drops that reply: both
  utterances are answered together, as one turn;
* the call ends only on `stop`, a dead or stalled socket (no send completes within
  ``WS_SEND_TIMEOUT_S``, or no inbound media for ``INBOUND_MEDIA_TIMEOUT_S``), max
  duration, the brain's own end, no voice at all (``tts_unavailable``), or
  :meth:`CallSession.end_call` from outside (a deploy's drain);
* a reply the caller interrupted (speech or a key) never ends the call, even when the
  brain asked to: its side effects stand, its end is withdrawn (see
  :mod:`voicebot.call.speech_handle`).

Recognition: with a streaming recognizer (``STT_MODE=streaming``) the caller's frames are
fed to the call's transcription session as they arrive (:mod:`voicebot.call.live_stt`)
and the end of the turn commits the utterance; a streaming failure (error, closed socket,
no final in time) hands the utterance's audio to batch STT.

Overlapped turns (``speculate_silence_ms``): at the first short pause inside an utterance
the audio so far is recognised and, once its words are in, they set the end-of-turn
silence (adaptive endpointing) and the reply starts, held back from the caller
(:mod:`voicebot.call.speculation`). When the endpointer confirms the turn with no voice
since the pause, that reply is released and answers it; voice again discards it (and its
requests are counted as wasted). With streaming recognition the reply starts at the pause
on the partial transcript and the pause's final keeps it (same words) or has it redone.
A held reply is never the current one, so barge-in, keys and endings act on it only
through the discard.

Machines (issue #13): the caller's first recognised utterance is checked for a mailbox
greeting, a network announcement or a long monologue
(:mod:`voicebot.brain.machine_speech`) in :meth:`CallSession._handle_utterance`, before a
speculative reply to it is released or a fresh one started; a match acts through
``services.on_machine_speech`` (the AMD route's code path and ``amd:<CallSid>`` token).

Fault boundaries: a failed sentence is handled by the speaker (fallback voice, then
the cached apology); a failed recognition plays the cached "say it again"; a tool or
database error inside the brain is answered with the same apology and the call goes
on; any other exception is logged once with the call SID and traceback, and the
caller hears an apology and a goodbye before the hang-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import ParamSpec

import structlog
from sqlalchemy.exc import SQLAlchemyError

from voicebot.audio.codec import FRAME_BYTES_ULAW, ulaw_to_pcm16
from voicebot.audio.endpointing import (
    Endpointer,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voicebot.brain.base import ConversationState, Reply
from voicebot.brain.machine_speech import machine_kind
from voicebot.brain.rules import DTMF_INTENTS
from voicebot.brain.script import AgentScript
from voicebot.brain.state import ENDED as ENDED_STAGE
from voicebot.brain.turn_end import TurnEnd, classify_turn_end
from voicebot.call.live_stt import LiveRecognition
from voicebot.call.playout import Playout
from voicebot.call.recorder import CallRecorder, TurnTimings
from voicebot.call.send_guard import SendGuard
from voicebot.call.services import CallServices
from voicebot.call.speaker import (
    APOLOGY_TEXT,
    ERROR_GOODBYE_TEXT,
    MAX_DURATION_GOODBYE_TEXT,
    OPT_OUT_KEY_TEXT,
    Speaker,
)
from voicebot.call.speculation import (
    HeldSink,
    Speculation,
    ToolGate,
    restore,
    same_words,
    snapshot,
)
from voicebot.call.speech_handle import ReplySource, SpeechHandle, fixed, from_reply
from voicebot.db.booking_tools import DbBookingTools
from voicebot.errors import (
    PeerGoneError,
    PeerStalledError,
    ProviderError,
    TelephonyError,
    VoiceUnavailableError,
)
from voicebot.providers.base import Transcript

log = structlog.get_logger(__name__)
P = ParamSpec("P")

DRAIN_TIMEOUT_S = 15.0
INBOUND_GAP_S = 0.1
INBOUND_RATE_HZ = 8000  # Twilio Media Streams audio: 8 kHz mu-law
LANGUAGE = "he"
SILENCE_MAX_PROMPTS = 2
# Marks normally come back when the audio has played; past this margin they are lost.
PLAYOUT_MARGIN_S = 5.0
INBOUND_WATCH_DIVISIONS = 6  # checks per inbound-media timeout
WS_CLOSE_NORMAL = 1000
WS_CLOSE_INTERNAL_ERROR = 1011
# A brain's I/O failing (a tool's query, its timeout): the turn is apologised for.
BRAIN_IO_ERRORS = (SQLAlchemyError, TimeoutError, OSError)
# The longest caller turn the brain reads: 30 s of fast speech is ~600 characters. A
# recogniser looping on a word can return 50 KB, whose intent matching alone held the
# event loop (every call of the process) for seconds.
MAX_CALLER_TEXT_CHARS = 1000

_PCM16_BYTES_PER_MS = 2 * INBOUND_RATE_HZ // 1000  # the endpointer's utterance audio


@dataclass(frozen=True, slots=True)
class UtteranceIn:
    audio: bytes
    decided_at: float
    speech_end_at: float
    transcript: asyncio.Future[Transcript] | None = None  # streaming STT's final, if streamed
    speculation: Speculation | None = None
    speech_starts: int = 0  # the session's count of caller speech starts at its end


@dataclass(frozen=True, slots=True)
class DtmfIn:
    digit: str


@dataclass
class CallSession:
    services: CallServices
    call_id: int
    call_sid: str
    state: ConversationState
    send_media: Callable[[bytes], Awaitable[None]]
    send_mark: Callable[[str], Awaitable[None]]
    send_clear: Callable[[], Awaitable[None]]
    started_at: float = field(default_factory=time.monotonic)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _inbox: asyncio.Queue[UtteranceIn | DtmfIn] = field(default_factory=asyncio.Queue)
    _last_media_at: float | None = None
    _caller_quiet_since: float = 0.0
    _barged: bool = False
    script: AgentScript | None = None
    end_reason: str | None = None

    def __post_init__(self) -> None:
        s = self.services.settings
        self.send_guard = SendGuard(send_timeout_s=s.ws_send_timeout_s)
        self.playout = Playout(
            self.send_guard.guard(self._to_peer(self.send_media)),
            self.send_guard.guard(self._to_peer(self.send_mark)),
            self.send_guard.guard(self._to_peer(self.send_clear)),
        )
        self.speaker = Speaker(self.services, self.playout)
        self.endpointer = Endpointer(
            endpoint_silence_ms=s.endpoint_silence_ms,
            barge_in_min_speech_ms=s.barge_in_min_speech_ms,
            speculate_silence_ms=s.speculate_silence_ms,
        )
        tools = DbBookingTools(
            settings=s,
            sessions=self.services.sessions,
            lead_id=self.state.lead.lead_id if self.state.lead else None,
            call_id=self.call_id,
        )
        # Writes wait while a speculative reply is held (it may be discarded).
        self._tool_gate = ToolGate(tools)
        self.brain = self.services.brain_factory(self._tool_gate, script=self.script)
        self.recorder = CallRecorder(self.services, call_id=self.call_id, call_sid=self.call_sid)
        streaming = self.services.streaming_stt
        self.live_stt = (
            None
            if streaming is None
            else LiveRecognition(streaming.open_session(language=LANGUAGE))
        )
        self.log = log.bind(
            call_sid=self.call_sid,
            call_id=self.call_id,
            lead_id=self.state.lead.lead_id if self.state.lead else None,
        )
        self.current: SpeechHandle | None = None
        self._turn_seq = 0
        self._tg: asyncio.TaskGroup | None = None
        self._turns: asyncio.Task[None] | None = None
        self._carry: str | None = None  # caller words whose reply was dropped unplayed
        self._ending = False
        self._end_requested = asyncio.Event()
        self._end_request: tuple[str, str | None] | None = None
        self._awaiting_input = False  # the turn loop waits for the caller's next input
        self._speculation: Speculation | None = None
        self._discards: set[asyncio.Task[None]] = set()
        self._live: set[Speculation] = set()  # started, neither adopted nor dropped
        self._screening = True  # the first recognised utterance is checked for a machine
        self._machine = False  # the first words were a recording: no more turns
        self._hang_up_at_close = False  # the call ended here: hang up over REST at the close
        self._inbound_rest = bytearray()  # caller audio short of a whole 20 ms frame
        self._speech_starts = 0  # SpeechStarted events so far: has the caller spoken again?
        self._odd_frames_logged = False

    def _to_peer(self, send: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
        """``send`` that ends the call quietly when the peer is gone (:class:`PeerGoneError`:
        a hang-up or a lost connection that a send saw before the receive side did):
        nothing is sent, and every part of the call unwinds as on ``stop``."""

        async def to_peer(*args: P.args, **kwargs: P.kwargs) -> None:
            if self.ended.is_set():
                return
            try:
                await send(*args, **kwargs)
            except PeerGoneError as exc:
                self._peer_gone(exc)

        return to_peer

    def _peer_gone(self, exc: PeerGoneError) -> None:
        if self.ended.is_set():
            return
        self.log.info("call.peer_gone", error=exc.message)
        self.end_reason = self.end_reason or "peer_gone"
        self.ended.set()

    # ---- inbound, called by the media route for every parsed event ----

    async def on_media(self, ulaw: bytes) -> None:
        """One ``media`` payload: Twilio sends 20 ms (160 bytes); any other length is cut
        into 20 ms frames (a remainder waits for the next payload), logged once per call."""
        now = time.monotonic()
        if self._last_media_at is not None and now - self._last_media_at > INBOUND_GAP_S:
            self.services.metrics.inbound_frame_gaps.inc()
        self._last_media_at = now
        if len(ulaw) == FRAME_BYTES_ULAW and not self._inbound_rest:
            await self._on_frame(ulaw, now)
            return
        if not self._odd_frames_logged:
            self._odd_frames_logged = True
            self.log.info("call.media_reframed", payload_bytes=len(ulaw))
        self._inbound_rest += ulaw
        whole = len(self._inbound_rest) - len(self._inbound_rest) % FRAME_BYTES_ULAW
        frames = bytes(self._inbound_rest[:whole])
        del self._inbound_rest[:whole]
        for start in range(0, whole, FRAME_BYTES_ULAW):
            await self._on_frame(frames[start : start + FRAME_BYTES_ULAW], now)

    async def _on_frame(self, ulaw: bytes, now: float) -> None:
        event = self.endpointer.process(ulaw_to_pcm16(ulaw), agent_speaking=self.playout.speaking)
        final = None
        if self.live_stt is not None:
            final = self.live_stt.on_frame(ulaw, event, stream_ms=self.endpointer.stream_ms)
        if event is None:
            if self.endpointer.in_speech and not self._barged and self.playout.speaking:
                # The caller was already talking when the agent began: the agent yields.
                await self._barge_in()
            return
        if isinstance(event, SpeechPaused):
            self._speculate(event, now, final)
        elif isinstance(event, SpeechResumed):
            self._discard_speculation("resumed")
        elif isinstance(event, SpeechStarted):
            self._barged = False
            self._speech_starts += 1
            current = self.current
            if self.playout.speaking:
                await self._barge_in()
            elif (
                current is not None
                and not current.committed
                and current.interruptible
                and current.user_text is not None
                and not current.started_playing
            ):
                # Still thinking about the last utterance: answer both together.
                await current.interrupt("caller_spoke")
        elif isinstance(event, SpeechEnded):
            # end_ms is in the endpointer's stream time, so measure back from its clock.
            speech_end_at = now - max(0, self.endpointer.stream_ms - event.end_ms) / 1000
            self._caller_quiet_since = now
            self.services.metrics.caller_utterances.inc()
            speculation = self._speculation
            self._speculation = None
            if speculation is not None and speculation.end_ms != event.end_ms:
                self._discard(speculation, "stale")
                speculation = None
            self._inbox.put_nowait(
                UtteranceIn(
                    event.audio, now, speech_end_at, final, speculation, self._speech_starts
                )
            )

    def _now(self) -> datetime:
        """Wall-clock now in the business time zone (the brain speaks local times)."""
        return datetime.now(self.services.settings.tz)

    async def on_mark(self, name: str) -> None:
        self.playout.on_mark(name)
        if self.current is not None:
            self.current.check_played()

    async def on_dtmf(self, digit: str) -> None:
        """A key interrupts the agent like speech (`clear`), then is acted on."""
        self._discard_speculation("dtmf")
        await self._interrupt_current("dtmf")
        self._inbox.put_nowait(DtmfIn(digit))

    def on_stop(self) -> None:
        self.end_reason = self.end_reason or "stop"
        self.ended.set()

    async def _barge_in(self) -> None:
        self._barged = True
        current = self.current
        if current is not None and not current.interruptible and not current.committed:
            return  # the last goodbye plays out
        self.services.metrics.barge_ins.inc()
        if current is not None and not current.committed:
            await current.interrupt("barge_in")
        elif self.playout.speaking:
            await self.playout.clear()
        self.log.info("call.barge_in")

    async def _interrupt_current(self, reason: str) -> None:
        current = self.current
        if current is not None and not current.committed and current.interruptible:
            await current.interrupt(reason)

    # ---- the call ----

    async def run(self, *, on_ended: Callable[[], Awaitable[None]] | None = None) -> None:
        """The live call, then its bookkeeping (queued turns, outcome, summary).
        ``on_ended`` runs between the two: the media route closes the stream there, so
        the caller's line is released as soon as the call ends, not after the summary
        nor after the REST hang-up of a call that ended here (made right after it)."""
        self.services.metrics.active_calls.inc()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._turns = tg.create_task(self._turn_loop())
                tasks = [
                    self._turns,
                    tg.create_task(self.playout.run()),
                    tg.create_task(self._max_duration()),
                    tg.create_task(self._watch_peer()),
                    tg.create_task(self._watch_inbound()),
                ]
                if self.live_stt is not None:
                    tasks.append(tg.create_task(self.live_stt.session.run()))
                await self.ended.wait()
                for spec in list(self._live):
                    self._discard(spec, "ended")
                # The socket is gone or going: cancel the reply's LLM and TTS requests now.
                current = self.current
                if current is not None and not current.committed:
                    await current.interrupt(self.end_reason or "ended", clear=False)
                for task in tasks:
                    task.cancel()
        finally:
            if self.live_stt is not None:
                await self.live_stt.session.aclose()
            self.services.metrics.active_calls.dec()
            self.services.metrics.playout_underruns.inc(self.playout.underruns)
            try:
                if on_ended is not None:
                    await on_ended()
                if self._hang_up_at_close:
                    # After the close: a <Connect><Stream> call whose stream closes is over
                    # at Twilio already; the REST hang-up makes sure (a slow API, a close
                    # that never arrived), and never holds the line open while it runs.
                    await self._hang_up()
            finally:
                await self.recorder.finish(self.state)

    @property
    def close_code(self) -> int:
        """The websocket close code telling the peer how the call ended: 1011 (internal
        error) when an unexpected fault ended it, even after the spoken goodbye, so a
        load run never counts such a call as ended by the agent; 1000 otherwise."""
        return WS_CLOSE_INTERNAL_ERROR if self.end_reason == "internal_error" else WS_CLOSE_NORMAL

    def end_call(self, reason: str, goodbye_text: str | None = None) -> None:
        """Ask the call to end politely, from outside it (a draining process): the reply
        is interrupted, ``goodbye_text`` is said and the call hung up, as at max duration.
        Returns at once; the call's own task does the ending."""
        if self._end_request is None:
            self._end_request = (reason, goodbye_text)
            self._end_requested.set()

    async def stop_for_machine(self) -> None:
        """Answering-machine detection said this is not a person: stop talking now
        (``clear``) and take no more turns. No hang-up here: the AMD route replaces the
        call's TwiML over REST (a voicemail message, or a hang-up), and Twilio's ``stop``
        then ends the session. Idempotent."""
        if self.ended.is_set():
            return
        self.end_reason = self.end_reason or "machine"
        self.log.info("call.machine_stop")
        turns = self._turns
        if turns is not None and turns is not asyncio.current_task():
            turns.cancel()
        current = self.current
        if current is not None and not current.committed:
            await current.interrupt("machine")
        if self.playout.speaking:
            await self.playout.clear()

    async def end_politely(self, reason: str, goodbye_text: str | None = None) -> None:
        """End the call from within it (max duration, an end_call request, a fault):
        interrupt the reply, say ``goodbye_text`` (not interruptible), hang up over REST,
        end the session. Idempotent."""
        if self._ending or self.ended.is_set():
            return
        self._ending = True
        self.end_reason = reason
        self.log.info("call.ending", reason=reason)
        turns = self._turns
        if turns is not None and turns is not asyncio.current_task():
            turns.cancel()
        try:
            await self._interrupt_current(reason)
            if goodbye_text and self._tg is not None:
                goodbye = Reply(goodbye_text, reason, (), end_call=True, transfer=False)
                handle = self._start_handle(
                    fixed(goodbye), TurnTimings(started_at=time.monotonic()), interruptible=False
                )
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await handle.wait_generated()
                    await handle.wait_played(handle.audio_s + PLAYOUT_MARGIN_S)
        except TimeoutError:
            self.log.warning("call.goodbye_not_played", reason=reason)
        finally:
            self._hang_up_at_close = True
            self.ended.set()

    async def _watch_peer(self) -> None:
        try:
            await self.send_guard.watch()
        except PeerStalledError as exc:
            self.log.warning("call.peer_stalled", error=exc.message)
            self.end_reason = "peer_stalled"
            self.ended.set()

    async def _watch_inbound(self) -> None:
        """Twilio sends media every 20 ms for the whole call: none for
        ``inbound_media_timeout_s`` is a partition without a close; the call ends and is
        hung up over REST, whatever the endpointer was doing."""
        timeout_s = self.services.settings.inbound_media_timeout_s
        while True:
            await asyncio.sleep(timeout_s / INBOUND_WATCH_DIVISIONS)
            silent_s = time.monotonic() - (self._last_media_at or self.started_at)
            if silent_s > timeout_s:
                self.log.warning("call.inbound_media_stopped", silent_ms=round(silent_s * 1000))
                self.end_reason = "inbound_media_stopped"
                await self._interrupt_current("inbound_media_stopped")
                # Hung up over REST after the stream closes, never holding the close.
                self._hang_up_at_close = True
                self.ended.set()
                return

    async def _max_duration(self) -> None:
        """At the limit (or on an end_call request), stop whatever the agent is doing,
        say goodbye, and hang up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.services.settings.max_call_duration_s):
                await self._end_requested.wait()
        reason, goodbye = self._end_request or ("max_duration", MAX_DURATION_GOODBYE_TEXT)
        await self.end_politely(reason, goodbye)

    async def _turn_loop(self) -> None:
        try:
            await self._turns_until_end()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The one place an unexpected fault is logged; the caller hears a goodbye.
            self.log.exception("call.unexpected_error")
            await self.end_politely("internal_error", ERROR_GOODBYE_TEXT)

    async def _turns_until_end(self) -> None:
        await self._speak(
            from_reply(lambda: self.brain.greet(self.state)),
            TurnTimings(started_at=self.started_at),
        )
        silences = 0
        while not self.ended.is_set():
            item = await self._next_input()
            if item is None:
                silences += 1
                await self._speak(
                    from_reply(partial(self._silence_reply, silences)),
                    TurnTimings(started_at=time.monotonic()),
                )
                continue
            silences = 0
            if isinstance(item, DtmfIn):
                digit = self._coalesce_keys(item.digit)
                # The opt-out's confirmation is not cut by more keys or speech: its
                # hang-up stands (a caller leaning on the keypad withdrew it forever).
                await self._speak(
                    from_reply(partial(self._key_reply, digit)),
                    TurnTimings(started_at=time.monotonic()),
                    interruptible=DTMF_INTENTS.get(digit) != "remove_me",
                )
                continue
            await self._handle_utterance(item)

    async def _silence_reply(self, count: int) -> Reply:
        return await self.brain.on_silence(self.state, count=count, now=self._now())

    async def _key_reply(self, digit: str) -> Reply:
        """The brain's answer to a key; the opt-out key is confirmed in one short sentence."""
        reply = await self.brain.on_dtmf(self.state, digit, now=self._now())
        if any(action.kind == "add_to_do_not_call" for action in reply.actions):
            actions = reply.actions
            return Reply(OPT_OUT_KEY_TEXT, reply.intent, actions, end_call=True, transfer=False)
        return reply

    def _coalesce_keys(self, digit: str) -> str:
        """The key to act on among ``digit`` and the keys queued right behind it: keys
        pressed faster than the agent answers them (a storm) are answered once, by the
        opt-out key when it is among them (it is never lost), else by the last one.
        Whatever follows the keys in the inbox stays queued, in order."""
        digits = [digit]
        rest: list[UtteranceIn | DtmfIn] = []
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if isinstance(item, DtmfIn) and not rest:
                digits.append(item.digit)
            else:
                rest.append(item)
        for item in rest:
            self._inbox.put_nowait(item)
        if len(digits) > 1:
            self.log.info("call.keys_coalesced", keys=len(digits))
        opt_out = [d for d in digits if DTMF_INTENTS.get(d) == "remove_me"]
        return opt_out[0] if opt_out else digits[-1]

    async def _next_input(self) -> UtteranceIn | DtmfIn | None:
        """The caller's next utterance or key, or None once both sides have been silent
        for ``silence_checkin_s`` (the agent's own speech and the caller's never count)."""
        checkin_s = self.services.settings.silence_checkin_s
        while True:
            quiet_since = self._quiet_since()
            wait_s = checkin_s
            if quiet_since is not None:
                wait_s = quiet_since + checkin_s - time.monotonic()
                if wait_s <= 0:
                    return None
            self._awaiting_input = True
            try:
                item = await asyncio.wait_for(self._inbox.get(), timeout=wait_s)
            except TimeoutError:
                continue
            finally:
                self._awaiting_input = False
            if self._discards:
                await asyncio.wait(set(self._discards))  # the state before a dropped reply
            return item

    def _quiet_since(self) -> float | None:
        """When the line fell silent (agent done playing, caller done speaking); None while
        either is talking."""
        if self.playout.speaking or self.endpointer.in_speech:
            return None
        return max(self.playout.idle_since, self._caller_quiet_since)

    async def _handle_utterance(self, item: UtteranceIn) -> None:
        spec = item.speculation
        known: str | None = None  # the words the machine check recognised
        if self._screening:
            # The one place both paths meet before a reply to the utterance is heard: a
            # speculative reply is still held here (released only by _adopt below).
            known = await self._screen_first_words(item)
            if self.ended.is_set() or self._machine:
                return
        if spec is not None and await self._adopt(spec, item):
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
                streamed = await self._streamed_text(item)
                text = streamed if streamed is not None else await self._recognize(item.audio)
                timings.stt_done_at = time.monotonic()
        except ProviderError as exc:
            self.services.metrics.provider_errors.labels("stt", exc.code).inc()
            self.log.warning("call.stt_failed", error=exc.message)
            await self._speak(fixed(_apology()), timings)
            return
        if self._carry:
            text = joined_words(self._carry, text)
            self._carry = None
        if not text:
            return
        if self._spoke_again(item):
            # The caller went on before any reply to these words began: they are answered
            # with the next utterance, as when a reply is dropped unplayed.
            self._carry = text
            self.log.info("call.reply_dropped", reason="caller_spoke", turn=self._turn_seq + 1)
            return
        await self._speak(
            lambda: self.brain.respond_stream(self.state, text, now=self._now()),
            timings,
            user_text=text,
        )

    async def _screen_first_words(self, item: UtteranceIn) -> str | None:
        """Check the caller's first recognised utterance for a recording (a mailbox
        greeting, a network announcement, a long monologue: :func:`machine_kind`); on a
        match act as on AMD's machine verdict (``services.on_machine_speech``, the AMD
        route's code path and ledger token) and take no more turns. Returns the words
        recognised (None when recognition failed: the turn recognises afresh)."""
        spec = item.speculation
        text: str | None = None
        if spec is not None:
            if spec.task is not None:
                await asyncio.wait({spec.task})
            if spec.error is None:
                text = spec.text
        if text is None:
            try:
                streamed = await self._streamed_text(item)
                text = streamed if streamed is not None else await self._recognize(item.audio)
            except ProviderError:
                return None
        if not text:
            return text  # nothing recognised: the next utterance is the first
        self._screening = False
        kind = machine_kind(text, speech_ms=len(item.audio) / _PCM16_BYTES_PER_MS)
        hook = self.services.on_machine_speech
        if kind is None or hook is None:
            return text
        self.log.info("call.machine_speech", kind=kind, words=len(text.split()))
        self._machine = True
        if spec is not None:
            self._discard(spec, "machine")
        await self.stop_for_machine()
        if not await hook(self.call_sid, kind):
            self.log.info("call.machine_speech_not_acted", kind=kind)  # AMD acted first
        await self.ended.wait()  # Twilio's stop (after the message or the hang-up) ends it
        return text

    async def _streamed_text(self, item: UtteranceIn) -> str | None:
        """The streaming recognizer's final for ``item``; None when it was not streamed or
        streaming failed (batch STT then transcribes the utterance's audio)."""
        if item.transcript is None:
            return None
        try:
            transcript = await item.transcript
        except ProviderError as exc:
            self.services.metrics.provider_errors.labels("stt_stream", exc.code).inc()
            self.log.warning("call.stt_stream_failed", error=exc.message)
            return None
        return caller_words(transcript.text)

    async def _recognize(self, audio: bytes) -> str:
        """The utterance's words ("" without a recognizer); raises ProviderError."""
        recognizer = self.services.recognizer
        if recognizer is None:
            return ""
        # The turn loop speaks only the streaming shape, so a recognizer with partial
        # transcripts plugs in here unchanged.
        stream = recognizer.open_stream(sample_rate_hz=INBOUND_RATE_HZ, language=LANGUAGE)
        try:
            stream.push(audio)
            transcript = await stream.finish()
        finally:
            await stream.aclose()
        return caller_words(transcript.text)

    # ---- speculative turns ----

    def _speculate(
        self, event: SpeechPaused, now: float, streamed: asyncio.Future[Transcript] | None
    ) -> None:
        """At a short pause, recognise the utterance so far and start its reply, held.
        With streaming recognition the pause committed the audio so far (``streamed`` is
        its final) and the partial transcript sets the end-of-turn silence at once."""
        partial = ""
        if self.live_stt is not None:
            partial = self.live_stt.partial_text
            if self.services.settings.adaptive_endpointing:
                self.endpointer.set_turn_silence_ms(self._turn_silence_ms(partial))
        if (
            self._tg is None
            or self._speculation is not None
            or not self._awaiting_input
            or not self._inbox.empty()
            or (self.services.recognizer is None and streamed is None)
            or self._ending
            or self.ended.is_set()
        ):
            return
        speech_end_at = now - max(0, self.endpointer.stream_ms - event.end_ms) / 1000
        spec = Speculation(
            audio=event.audio,
            end_ms=event.end_ms,
            started_at=now,
            speech_end_at=speech_end_at,
            carry=self._carry,
            streamed=streamed,
            partial=partial,
        )
        self._speculation = spec
        self._live.add(spec)
        spec.task = self._tg.create_task(self._run_speculation(spec), name="speculation")

    async def _run_speculation(self, spec: Speculation) -> None:
        """Recognise the paused audio and start its reply, held. With streaming
        recognition the reply starts at once on the partial transcript; the commit's final
        then keeps it when it says the same words (:func:`same_words`), else the reply is
        taken back and started again on the final's words."""
        settings = self.services.settings
        early = caller_words(spec.partial) if spec.streamed is not None else ""
        if early and settings.speculate_on_partial:
            await self._start_speculative_reply(spec, early, stt_done_at=time.monotonic())
        try:
            if spec.streamed is not None:
                # Shielded: the same final may answer the turn if this task is cancelled.
                spec.text = caller_words((await asyncio.shield(spec.streamed)).text)
            else:
                spec.text = await self._recognize(spec.audio)
        except ProviderError as exc:
            spec.error = exc
            await self._retract(spec)  # the turn is recognised afresh
            return
        finally:
            spec.recognised_at = time.monotonic()
            spec.recognised.set()
        if settings.adaptive_endpointing and spec is self._speculation:
            self.endpointer.set_turn_silence_ms(self._turn_silence_ms(spec.text))
        partial_replies = self.services.metrics.speculative_partial_replies
        if spec.handle is not None:
            if same_words(early, spec.text):
                partial_replies.labels("kept").inc()
                final = joined_words(spec.carry, spec.text) if spec.carry else spec.text
                spec.handle.confirm_user_text(final)
                return
            partial_replies.labels("redone").inc()
            await self._retract(spec)
        await self._start_speculative_reply(spec, spec.text, stt_done_at=spec.recognised_at)

    async def _start_speculative_reply(
        self, spec: Speculation, words: str, *, stt_done_at: float | None
    ) -> None:
        """Start the held reply to ``words`` (after the carried words, if any)."""
        text = joined_words(spec.carry, words) if spec.carry else words
        if not text or spec.dropped:
            return
        if self._discards:
            await asyncio.wait(set(self._discards))  # the state as it was before them
        if spec.dropped or self._tg is None:
            return
        spec.state_before = snapshot(self.state)
        spec.turn_mark = self._turn_seq
        spec.sink = HeldSink(self.playout)
        self._tool_gate.hold()
        timings = TurnTimings(
            started_at=spec.started_at,
            speech_end_at=spec.speech_end_at,
            stt_done_at=stt_done_at,
        )
        handle = SpeechHandle(
            turn_id=self._turn_seq + 1,
            source=lambda: self.brain.respond_stream(self.state, text, now=self._now()),
            timings=timings,
            state=self.state,
            playout=self.playout,
            speaker=self.speaker,
            recorder=self.recorder,
            log=self.log,
            user_text=text,
            interruptible=not self._conversation_over(),
            sink=spec.sink,
        )
        spec.handle = handle
        handle.start(self._tg)

    def _turn_silence_ms(self, text: str) -> int:
        settings = self.services.settings
        kind = classify_turn_end(text)
        self.services.metrics.turn_end_kinds.labels(kind.value).inc()
        if kind is TurnEnd.COMPLETE:
            return settings.endpoint_short_silence_ms
        if kind is TurnEnd.ANSWERED:
            return settings.endpoint_answer_silence_ms
        if kind is TurnEnd.HESITANT:
            return settings.endpoint_long_silence_ms
        return settings.endpoint_silence_ms

    def _spoke_again(self, item: UtteranceIn) -> bool:
        """The caller started speaking again after ``item`` ended (SpeechStarted came while
        its reply was being recognised or prepared, before it was the current reply)."""
        return self._speech_starts != item.speech_starts

    async def _adopt(self, spec: Speculation, item: UtteranceIn) -> bool:
        """The turn the speculation was made on is confirmed: release its reply and follow
        it like any other. False (the caller's words are answered afresh) when there is
        no reply to release, it was made on other grounds (carried words changed, a
        reply came between), or the caller spoke again while it was still being prepared
        (it would start over them: the words are carried to the next utterance)."""
        if spec.task is not None:
            await asyncio.wait({spec.task})
        handle = spec.handle
        if spec.error is not None:  # recognised afresh on the whole utterance
            self._live.discard(spec)
            self.services.metrics.speculations.labels("stt_failed").inc()
            return False
        if (
            handle is None
            or spec.carry != self._carry
            or spec.turn_mark != self._turn_seq
            or self._spoke_again(item)
        ):
            self._discard(spec, "unused")
            if self._discards:
                await asyncio.wait(set(self._discards))
            return False
        self._live.discard(spec)
        self.services.metrics.speculations.labels("used").inc()
        self._carry = None
        self._turn_seq = handle.turn_id
        self.current = handle
        self._tool_gate.release()
        handle.timings.confirmed_at = time.monotonic()
        if spec.sink is not None:
            spec.sink.release()
        handle.check_played()
        await self._follow(handle)
        return True

    def _discard_speculation(self, reason: str) -> None:
        spec = self._speculation
        self._speculation = None
        if spec is not None:
            self._discard(spec, reason)

    def _discard(self, spec: Speculation, reason: str) -> None:
        """Drop a speculation: its requests are cancelled and counted as wasted, the state
        its reply changed is put back (in a task the next turn waits for)."""
        if spec.dropped:
            return
        spec.dropped = True
        self._live.discard(spec)
        self.services.metrics.speculations.labels(reason).inc()
        if self._tg is None:
            return
        task = self._tg.create_task(self._drop(spec, reason), name="speculation-drop")
        self._discards.add(task)
        task.add_done_callback(self._discards.discard)

    async def _drop(self, spec: Speculation, reason: str) -> None:
        metrics = self.services.metrics
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
        metrics = self.services.metrics
        await handle.discard()
        if spec.sink is not None:
            spec.sink.discard()
        restore(self.state, spec.state_before)
        self._tool_gate.release()
        spec.handle = None
        spec.sink = None
        if self.services.llm is not None:
            metrics.speculative_wasted_requests.labels("llm").inc()
        sentences = [u for u in handle.utterances if u.text]
        metrics.speculative_wasted_requests.labels("tts").inc(len(sentences))
        metrics.speculative_wasted_words.inc(sum(len(u.text.split()) for u in sentences))

    def _start_handle(
        self,
        source: ReplySource,
        timings: TurnTimings,
        *,
        user_text: str | None = None,
        interruptible: bool = True,
    ) -> SpeechHandle:
        if self._tg is None:
            raise RuntimeError("a reply needs the running call")
        self._turn_seq += 1
        handle = SpeechHandle(
            turn_id=self._turn_seq,
            source=source,
            timings=timings,
            state=self.state,
            playout=self.playout,
            speaker=self.speaker,
            recorder=self.recorder,
            log=self.log,
            user_text=user_text,
            interruptible=interruptible and not self._conversation_over(),
        )
        self.current = handle
        handle.start(self._tg)
        return handle

    def _conversation_over(self) -> bool:
        """The brain already ended the conversation (an opt-out, a booking's goodbye that
        the caller cut): whatever the caller adds is answered by a goodbye that hangs up.
        That goodbye is not interruptible, else a caller talking or pressing keys over
        each goodbye would withdraw each hang-up and hold the call open until max
        duration."""
        return self.state.stage == ENDED_STAGE

    async def _speak(
        self,
        source: ReplySource,
        timings: TurnTimings,
        *,
        user_text: str | None = None,
        interruptible: bool = True,
    ) -> None:
        """Speak one reply through its handle and wait until it was heard or interrupted;
        then store the turn, and end the call if the brain said so."""
        handle = self._start_handle(
            source, timings, user_text=user_text, interruptible=interruptible
        )
        await self._follow(handle)

    async def _follow(self, handle: SpeechHandle) -> None:
        """Wait until ``handle`` (the current reply) was heard or interrupted; then store
        the turn, and end the call if the brain said so."""
        await handle.wait_generated()
        if not handle.committed:
            await self._save_state(handle)  # the caller's words, while the reply plays
        if handle.error is not None and not handle.committed:
            await handle.interrupt("error")
        if not await handle.wait_played(handle.audio_s + PLAYOUT_MARGIN_S):
            # Twilio never echoed the marks: what the playout clock says has played was
            # heard (the reply is not stored as interrupted); the rest is cut.
            if self.playout.expire_marks():
                self.log.warning("call.marks_lost", turn=handle.turn_id)
                handle.check_played()
            await handle.interrupt("marks_lost")
        await self._persist()
        if handle.dropped_user_text:
            self._carry = handle.dropped_user_text
        if isinstance(handle.error, VoiceUnavailableError):
            await self._end_voiceless(handle.error)
            return
        if isinstance(handle.error, BRAIN_IO_ERRORS):
            # A tool's query failed or stalled past its timeout: apologise, go on.
            self.log.warning("call.brain_io_failed", error=type(handle.error).__name__)
            await self._speak(fixed(_apology()), TurnTimings(started_at=time.monotonic()))
            return
        if handle.error is not None:
            raise handle.error
        end = handle.end_request
        if end is not None:
            await self._finish(end)
        elif handle.final is not None and handle.final.end_call and handle.cut_by_caller:
            self.log.info("call.end_withdrawn", turn=handle.turn_id, reason=handle.interrupted)

    async def _end_voiceless(self, exc: VoiceUnavailableError) -> None:
        """No voice can speak: hang up at once (a silent call helps nobody) and store
        ``tts_unavailable``, an outcome the campaign retries, unless the brain already
        reached one (a booking made before the voice failed stands)."""
        self.log.error("call.voice_unavailable", error=exc.message)
        self.end_reason = "tts_unavailable"
        self.state.outcome = self.state.outcome or "tts_unavailable"
        self._hang_up_at_close = True
        self.ended.set()

    async def _persist(self) -> None:
        await self._save_state(None)
        self.services.metrics.turns.inc()
        await self.recorder.flush()

    async def _save_state(self, playing: SpeechHandle | None) -> None:
        """Checkpoint the conversation to the turn store; the reply still ``playing`` is
        left out of it (only the heard part is ever stored, at its commit)."""
        data = self.state.to_dict()
        if playing is not None:
            mark = playing.history_mark
            data["history"] = [
                turn
                for index, turn in enumerate(data["history"])
                if index < mark or turn["role"] != "assistant"
            ]
        await self.services.store.save(
            self.call_sid, data, ttl_s=self.services.settings.turn_state_ttl_s
        )

    async def _finish(self, reply: Reply) -> None:
        await self.playout.wait_drained(DRAIN_TIMEOUT_S)
        self.end_reason = self.end_reason or ("transfer" if reply.transfer else "brain_end")
        dialer = self.services.dialer
        if reply.transfer and dialer is not None and self.services.settings.transfer_number:
            try:
                await dialer.redirect_to_dial(self.call_sid, self.services.settings.transfer_number)
            except TelephonyError as exc:
                self.log.warning("call.transfer_failed", error=exc.message)
        else:
            self._hang_up_at_close = True
        self.ended.set()

    async def _hang_up(self) -> None:
        dialer = self.services.dialer
        if dialer is None:
            return
        try:
            await dialer.hangup(self.call_sid)
        except TelephonyError as exc:
            self.log.warning("call.hangup_failed", error=exc.message)


def _apology() -> Reply:
    return Reply(
        text=APOLOGY_TEXT, intent="provider_error", actions=(), end_call=False, transfer=False
    )


def caller_words(text: str) -> str:
    """A transcript as the brain, the model and the stored turn may read it: control,
    format (bidi, zero-width) and other non-printing characters become spaces, runs of
    space one, and the text is cut to :data:`MAX_CALLER_TEXT_CHARS` at a word."""
    head = text[: MAX_CALLER_TEXT_CHARS * 2]
    printable = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in head)
    words = " ".join(printable.split())
    if len(words) <= MAX_CALLER_TEXT_CHARS:
        return words
    cut = words[: MAX_CALLER_TEXT_CHARS + 1]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut[:MAX_CALLER_TEXT_CHARS]


def joined_words(carried: str, text: str) -> str:
    """Carried caller words (a reply to them was dropped unplayed) joined to the next
    utterance's, cut like one turn to :data:`MAX_CALLER_TEXT_CHARS` at a word, keeping the
    newest words: a caller who never lets the agent in is answered on what they said last."""
    words = f"{carried} {text}".strip()
    if len(words) <= MAX_CALLER_TEXT_CHARS:
        return words
    tail = words[-MAX_CALLER_TEXT_CHARS - 1 :]
    return tail.split(" ", 1)[1] if " " in tail else tail[-MAX_CALLER_TEXT_CHARS:]
