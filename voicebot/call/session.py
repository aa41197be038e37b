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

The session owns the call's state and its receive path (media, marks, keys, barge-in);
its collaborators act on that state, one concern each: :mod:`~voicebot.call.turns` (the
turn loop), :mod:`~voicebot.call.recognition` (streamed final, else batch STT),
:mod:`~voicebot.call.speculator` (overlapped turns: speculate at a pause, adopt or
discard; a held reply is never the current one), :mod:`~voicebot.call.screening` (the
first words checked for a machine, issue #13), :mod:`~voicebot.call.keys` (DTMF) and
:mod:`~voicebot.call.ending` (every way the call ends, and the watchdogs).

Fault boundaries: a failed sentence is handled by the speaker (fallback voice, then
the cached apology); a failed recognition plays the cached "say it again"; a tool or
database error inside the brain is answered with the same apology and the call goes
on; any other exception is logged once with the call SID and traceback, and the
caller hears an apology and a goodbye before the hang-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ParamSpec

import structlog

from voicebot.audio.codec import FRAME_BYTES_ULAW, ulaw_to_pcm16
from voicebot.audio.endpointing import (
    Endpointer,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voicebot.brain.base import ConversationState
from voicebot.brain.script import AgentScript
from voicebot.call.ending import Endings
from voicebot.call.keys import DtmfIn
from voicebot.call.live_stt import LiveRecognition
from voicebot.call.playout import Playout
from voicebot.call.recognition import LANGUAGE, Recognition
from voicebot.call.recorder import CallRecorder
from voicebot.call.send_guard import SendGuard
from voicebot.call.services import CallServices
from voicebot.call.speaker import Speaker
from voicebot.call.speculation import Speculation, ToolGate
from voicebot.call.speculator import Speculator
from voicebot.call.speech_handle import SpeechHandle
from voicebot.call.turns import TurnLoop
from voicebot.db.booking_tools import DbBookingTools
from voicebot.errors import PeerGoneError, SignatureError
from voicebot.providers.base import Transcript

log = structlog.get_logger(__name__)
P = ParamSpec("P")

INBOUND_GAP_S = 0.1

Action = Callable[[], Awaitable[object]]
"""What an inbound frame starts and the session then awaits (a barge-in's `clear`, an
interrupt of the reply being prepared)."""
_NO_ACTIONS: tuple[Action, ...] = ()
WS_CLOSE_NORMAL = 1000
WS_CLOSE_INTERNAL_ERROR = 1011
WS_CLOSE_POLICY_VIOLATION = 1008  # the stream was refused its call (RFC 6455)


@dataclass(frozen=True, slots=True)
class UtteranceIn:
    audio: bytes
    decided_at: float
    speech_end_at: float
    transcript: asyncio.Future[Transcript] | None = None  # streaming STT's final, if streamed
    speculation: Speculation | None = None
    speech_starts: int = 0  # the session's count of caller speech starts at its end


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
    end_reason: str | None = None  # the first way out's; set through Endings.record
    # The stream's claim on the call row while it runs beside the session (the webhook
    # handed the call over); None once claimed before the session began.
    claim: asyncio.Future[None] | None = None

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
            call_sid=self.call_sid,
            phone=self.state.lead.phone if self.state.lead else None,
            optouts=self.services.optouts,
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
        self.recognition = Recognition(self.services, self.log)
        self.current: SpeechHandle | None = None
        self._turn_seq = 0
        self._tg: asyncio.TaskGroup | None = None
        self._turns: asyncio.Task[None] | None = None
        self._carry: str | None = None  # caller words whose reply was dropped unplayed
        self._ending = False
        self._end_requested = asyncio.Event()
        self._end_request: tuple[str, str | None] | None = None
        self._awaiting_input = False  # the turn loop waits for the caller's next input
        self.speculator = Speculator(self)
        self.endings = Endings(self)
        self.turn_loop = TurnLoop(self)
        self._screening = True  # the first recognised utterance is checked for a machine
        self._machine = False  # the first words were a recording: no more turns
        self._hang_up_at_close = False  # the call ended here: hang up over REST at the close
        self._inbound_rest = bytearray()  # caller audio short of a whole 20 ms frame
        self._speech_starts = 0  # SpeechStarted events so far: has the caller spoken again?
        self._odd_frames_logged = False
        # Actions of frames taken without awaiting (on_media_nowait), run in order.
        self._actions: asyncio.Queue[Action] = asyncio.Queue()

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
                self.endings.peer_gone(exc)

        return to_peer

    # ---- inbound, called by the media route for every parsed event ----

    async def on_media(self, ulaw: bytes) -> None:
        """One ``media`` payload: Twilio sends 20 ms (160 bytes); any other length is cut
        into 20 ms frames (a remainder waits for the next payload), logged once per call.
        What the frames start (a barge-in, an interrupt) is awaited here."""
        for action in self._media(ulaw):
            await action()

    def on_media_nowait(self, ulaw: bytes) -> None:
        """:meth:`on_media` for a caller that cannot await (the websocket's direct receive,
        inside the socket's read callback): the frames are processed now, and what they
        start runs next on the session's action task, in order."""
        for action in self._media(ulaw):
            self._actions.put_nowait(action)

    def _media(self, ulaw: bytes) -> tuple[Action, ...] | list[Action]:
        now = time.monotonic()
        if self._last_media_at is not None and now - self._last_media_at > INBOUND_GAP_S:
            self.services.metrics.inbound_frame_gaps.inc()
        self._last_media_at = now
        if len(ulaw) == FRAME_BYTES_ULAW and not self._inbound_rest:
            action = self._on_frame(ulaw, now)
            return _NO_ACTIONS if action is None else (action,)
        if not self._odd_frames_logged:
            self._odd_frames_logged = True
            self.log.info("call.media_reframed", payload_bytes=len(ulaw))
        self._inbound_rest += ulaw
        whole = len(self._inbound_rest) - len(self._inbound_rest) % FRAME_BYTES_ULAW
        frames = bytes(self._inbound_rest[:whole])
        del self._inbound_rest[:whole]
        actions = []
        for start in range(0, whole, FRAME_BYTES_ULAW):
            action = self._on_frame(frames[start : start + FRAME_BYTES_ULAW], now)
            if action is not None:
                actions.append(action)
        return actions

    async def _run_actions(self) -> None:
        """Runs what frames taken by :meth:`on_media_nowait` started, one after another;
        one that raises (a bug) ends the call as :meth:`on_receive_failed` does."""
        while True:
            action = await self._actions.get()
            try:
                await action()
            except Exception:
                self.on_receive_failed()
                return

    def _on_frame(self, ulaw: bytes, now: float) -> Action | None:
        event = self.endpointer.process(ulaw_to_pcm16(ulaw), agent_speaking=self.playout.speaking)
        final = None
        if self.live_stt is not None:
            final = self.live_stt.on_frame(ulaw, event, stream_ms=self.endpointer.stream_ms)
        if event is None:
            if self.endpointer.in_speech and not self._barged and self.playout.speaking:
                # The caller was already talking when the agent began: the agent yields.
                return self._barge_in()
            return None
        if isinstance(event, SpeechPaused):
            self.speculator.speculate(event, now, final)
        elif isinstance(event, SpeechResumed):
            self.speculator.discard_pending("resumed")
        elif isinstance(event, SpeechStarted):
            self._barged = False
            self._speech_starts += 1
            current = self.current
            if self.playout.speaking:
                return self._barge_in()
            if (
                current is not None
                and not current.committed
                and current.interruptible
                and current.user_text is not None
                and not current.started_playing
            ):
                # Still thinking about the last utterance: answer both together.
                return functools.partial(current.interrupt, "caller_spoke")
        elif isinstance(event, SpeechEnded):
            # end_ms is in the endpointer's stream time, so measure back from its clock.
            speech_end_at = now - max(0, self.endpointer.stream_ms - event.end_ms) / 1000
            self._caller_quiet_since = now
            self.services.metrics.caller_utterances.inc()
            speculation = self.speculator.take_pending(event.end_ms)
            self._inbox.put_nowait(
                UtteranceIn(
                    event.audio, now, speech_end_at, final, speculation, self._speech_starts
                )
            )
        return None

    def _spoke_again(self, item: UtteranceIn) -> bool:
        """The caller started speaking again after ``item`` ended (SpeechStarted came while
        its reply was being recognised or prepared, before it was the current reply)."""
        return self._speech_starts != item.speech_starts

    def _now(self) -> datetime:
        """Wall-clock now in the business time zone (the brain speaks local times)."""
        return datetime.now(self.services.settings.tz)

    def on_mark(self, name: str) -> None:
        """Twilio echoed the mark ``name``: the sentence before it was played in full."""
        self.playout.on_mark(name)
        if self.current is not None:
            self.current.check_played()

    async def on_dtmf(self, digit: str) -> None:
        """A key interrupts the agent like speech (`clear`), then is acted on."""
        self.speculator.discard_pending("dtmf")
        await self._interrupt_current("dtmf")
        self._inbox.put_nowait(DtmfIn(digit))

    def on_stop(self) -> None:
        self.endings.record("stop")
        self.ended.set()

    def on_receive_failed(self) -> None:
        """Called in an ``except`` block when an inbound frame made the receive path raise
        (a bug): logged once, with the call and the traceback, and the call ends at once as
        ``internal_error`` (close 1011). No goodbye: the caller can no longer be heard."""
        if self.ended.is_set():
            return
        self.log.exception("call.unexpected_error", stage="receive")
        self.endings.record("internal_error")
        self.ended.set()

    def _barge_in(self) -> Action | None:
        """The caller talks over the agent: decided now (on the frame), returns what
        silences the agent (the reply's interrupt, or a `clear`) for the caller to await."""
        self._barged = True
        current = self.current
        if current is not None and not current.interruptible and not current.committed:
            return None  # the last goodbye plays out
        self.services.metrics.barge_ins.inc()
        self.log.info("call.barge_in")
        if current is not None and not current.committed:
            return functools.partial(current.interrupt, "barge_in")
        if self.playout.speaking:
            return self.playout.clear
        return None

    async def _interrupt_current(self, reason: str) -> None:
        current = self.current
        if current is not None and not current.committed and current.interruptible:
            await current.interrupt(reason)

    @property
    def refused(self) -> bool:
        """The claim was refused: another stream holds the call, or Twilio reported it over
        (False while the claim is still running)."""
        claim = self.claim
        return (
            claim is not None
            and claim.done()
            and not claim.cancelled()
            and isinstance(claim.exception(), SignatureError)
        )

    async def stream_claimed(self) -> bool:
        """Wait for this stream's claim on the call: True once it holds (or the database
        was unavailable: the signed token proves the call, as on the stream's start), False
        when it was refused. Everything that acts on the caller or writes waits here."""
        claim = self.claim
        if claim is None:
            return True
        if not claim.done():
            # Shielded: a caller cancelled while waiting leaves the claim running.
            with contextlib.suppress(SignatureError):
                await asyncio.shield(claim)
        return not self.refused

    async def _confirm_claim(self) -> None:
        """End the session when its claim is refused: no goodbye, no hang-up, nothing
        stored (the call belongs to another stream, or Twilio reported it over)."""
        if self.claim is None or await self.stream_claimed():
            return
        exc = self.claim.exception()
        self.log.warning("twilio.stream_rejected", reason=getattr(exc, "message", str(exc)))
        self.endings.record("stream_refused")
        self.ended.set()

    # ---- the call ----

    async def run(self, *, on_ended: Callable[[], Awaitable[None]] | None = None) -> None:
        """The live call, then its bookkeeping (queued turns, outcome, summary).
        ``on_ended`` runs between the two: the media route closes the stream there, so
        the caller's line is released as soon as the call ends, not after the summary
        nor after the REST hang-up of a call that ended here (made right after it).

        Every line logged by the call's own tasks names it (:meth:`log_context`)."""
        with self.log_context():
            await self._run(on_ended)

    def log_context(self) -> contextlib.AbstractContextManager[None]:
        """Binds the call (SID, call id, lead id) to every line logged in this context and
        in the tasks created from it: the brain's, its tools' and the providers', which
        have no call logger of their own. The media route enters it around the receive
        path too, since a reply speculated at a pause starts from there."""
        return structlog.contextvars.bound_contextvars(
            call_sid=self.call_sid,
            call_id=self.call_id,
            lead_id=self.state.lead.lead_id if self.state.lead else None,
        )

    async def _run(self, on_ended: Callable[[], Awaitable[None]] | None) -> None:
        self.services.metrics.active_calls.inc()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                # The greeting's task first: on the loop's next iteration it queues the
                # cached greeting and sends its first frames (Playout.pump), before the
                # call's other tasks have run once.
                greeting = self.turn_loop.start_greeting()
                self._turns = tg.create_task(self.turn_loop.run(greeting))
                tasks = [
                    self._turns,
                    tg.create_task(self.playout.run()),
                    tg.create_task(self.endings.max_duration()),
                    tg.create_task(self.endings.watch_peer()),
                    tg.create_task(self.endings.watch_inbound()),
                    tg.create_task(self._run_actions()),
                ]
                if self.live_stt is not None:
                    tasks.append(tg.create_task(self.live_stt.session.run()))
                if self.claim is not None:
                    tasks.append(tg.create_task(self._confirm_claim()))
                await self.ended.wait()
                self.speculator.discard_live("ended")
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
            # A session that ended before its claim was decided waits for it: whether
            # the call is this stream's decides what is hung up and stored.
            await self.stream_claimed()
            try:
                if on_ended is not None:
                    await on_ended()
                # A refused stream's call is not its own: nothing to hang up or store.
                if self._hang_up_at_close and not self.refused:
                    # After the close: a <Connect><Stream> call whose stream closes is over
                    # at Twilio already; the REST hang-up makes sure (a slow API, a close
                    # that never arrived), and never holds the line open while it runs.
                    await self.endings.hang_up()
            finally:
                try:
                    if not self.refused:
                        await self.recorder.finish(self.state)
                finally:
                    self._release()

    def _release(self) -> None:
        """Let go of the finished call's tasks, reply, speculations and frame actions that
        never ran (a pending interrupt holds its reply): a cancelled task
        keeps its exception, whose traceback keeps the frames and their locals (the last
        utterance's audio, a speculation's) in a cycle with this session, which only a
        full collection would free."""
        self._turns = None
        self._tg = None
        self.current = None
        self.speculator.pending = None
        self.speculator.live.clear()
        while not self._actions.empty():  # a frame's action that never ran holds its reply
            self._actions.get_nowait()

    @property
    def close_code(self) -> int:
        """The websocket close code telling the peer how the call ended: 1011 (internal
        error) when an unexpected fault ended it, even after the spoken goodbye, so a
        load run never counts such a call as ended by the agent; 1000 otherwise."""
        if self.refused:
            return WS_CLOSE_POLICY_VIOLATION
        return WS_CLOSE_INTERNAL_ERROR if self.end_reason == "internal_error" else WS_CLOSE_NORMAL

    def end_call(self, reason: str, goodbye_text: str | None = None) -> None:
        """Ask the call to end politely, from outside it (a draining process): the reply
        is interrupted, ``goodbye_text`` is said and the call hung up, as at max duration.
        Returns at once; the call's own task does the ending."""
        self.endings.request(reason, goodbye_text)

    async def stop_for_machine(self) -> None:
        """Answering-machine detection said this is not a person: stop talking now and
        take no more turns (:meth:`Endings.stop_for_machine`). Idempotent."""
        await self.endings.stop_for_machine()

    async def end_politely(self, reason: str, goodbye_text: str | None = None) -> None:
        """End the call from within it: interrupt the reply, say ``goodbye_text``, hang
        up over REST (:meth:`Endings.end_politely`). Idempotent: the first end reason
        stands."""
        await self.endings.end_politely(reason, goodbye_text)
