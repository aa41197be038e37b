"""One live call: receive loop, turn loop and playout, owned by one TaskGroup.

The session speaks only in plain dataclasses: the media route parses Twilio JSON
into events and hands over callables that send `media`, `mark` and `clear`. Turning a
reply into audio is the :class:`~voicebot.call.speaker.Speaker`'s job; taking turns
(barge-in, silence, endings) is this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from voicebot.audio.codec import ulaw_to_pcm16
from voicebot.audio.endpointing import Endpointer, SpeechEnded, SpeechStarted
from voicebot.brain.base import ConversationState, Reply, ReplyEvent, stream_of
from voicebot.brain.script import AgentScript
from voicebot.call.playout import Playout, Utterance
from voicebot.call.recorder import CallRecorder, TurnTimings
from voicebot.call.send_guard import SendGuard
from voicebot.call.services import CallServices
from voicebot.call.speaker import APOLOGY_TEXT, MAX_DURATION_GOODBYE_TEXT, Speaker
from voicebot.db.booking_tools import DbBookingTools
from voicebot.errors import PeerStalledError, ProviderError, TelephonyError

log = structlog.get_logger(__name__)

DRAIN_TIMEOUT_S = 15.0
INBOUND_GAP_S = 0.1
INBOUND_RATE_HZ = 8000  # Twilio Media Streams audio: 8 kHz mu-law
LANGUAGE = "he"
SILENCE_MAX_PROMPTS = 2


@dataclass(frozen=True, slots=True)
class UtteranceIn:
    audio: bytes
    decided_at: float
    speech_end_at: float


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
    _speaking: asyncio.Task[None] | None = None
    _last_media_at: float | None = None
    _caller_quiet_since: float = 0.0
    _barged: bool = False
    greeting_frame_at: float | None = None
    script: AgentScript | None = None
    # end_call(): asked from outside (a draining process); the max-duration path serves it.
    _end_requested: asyncio.Event = field(default_factory=asyncio.Event)
    _end_reason: str = "max_duration"
    _end_goodbye: str = MAX_DURATION_GOODBYE_TEXT

    def __post_init__(self) -> None:
        s = self.services.settings
        self.send_guard = SendGuard(send_timeout_s=s.ws_send_timeout_s)
        self.playout = Playout(
            self.send_guard.guard(self.send_media),
            self.send_guard.guard(self.send_mark),
            self.send_guard.guard(self.send_clear),
        )
        self.speaker = Speaker(self.services, self.playout)
        self.endpointer = Endpointer(
            endpoint_silence_ms=s.endpoint_silence_ms,
            barge_in_min_speech_ms=s.barge_in_min_speech_ms,
        )
        tools = DbBookingTools(
            settings=s,
            sessions=self.services.sessions,
            lead_id=self.state.lead.lead_id if self.state.lead else None,
            call_id=self.call_id,
        )
        self.brain = self.services.brain_factory(tools, script=self.script)
        self.recorder = CallRecorder(self.services, call_id=self.call_id, call_sid=self.call_sid)
        self.log = log.bind(
            call_sid=self.call_sid,
            call_id=self.call_id,
            lead_id=self.state.lead.lead_id if self.state.lead else None,
        )

    # ---- inbound, called by the media route for every parsed event ----

    async def on_media(self, ulaw: bytes) -> None:
        now = time.monotonic()
        if self._last_media_at is not None and now - self._last_media_at > INBOUND_GAP_S:
            self.services.metrics.inbound_frame_gaps.inc()
        self._last_media_at = now
        event = self.endpointer.process(ulaw_to_pcm16(ulaw), agent_speaking=self.playout.speaking)
        if event is None:
            if self.endpointer.in_speech and not self._barged and self.playout.speaking:
                # The caller was already talking when the agent began: the agent yields.
                await self._barge_in()
            return
        if isinstance(event, SpeechStarted):
            self._barged = False
            if self.playout.speaking:
                await self._barge_in()
        elif isinstance(event, SpeechEnded):
            # end_ms is in the endpointer's stream time, so measure back from its clock.
            speech_end_at = now - max(0, self.endpointer.stream_ms - event.end_ms) / 1000
            self._caller_quiet_since = now
            self._inbox.put_nowait(UtteranceIn(event.audio, now, speech_end_at))

    def _now(self) -> datetime:
        """Wall-clock now in the business time zone (the brain speaks local times)."""
        return datetime.now(self.services.settings.tz)

    def on_mark(self, name: str) -> None:
        self.playout.on_mark(name)

    def on_dtmf(self, digit: str) -> None:
        self._inbox.put_nowait(DtmfIn(digit))

    def on_stop(self) -> None:
        self.ended.set()

    async def _barge_in(self) -> None:
        self._barged = True
        self.speaker.interrupt()  # whatever is still being synthesized is never sent
        self.services.metrics.barge_ins.inc()
        if self._speaking is not None and not self._speaking.done():
            self._speaking.cancel()
        cut = await self.playout.clear()
        self._keep_only_heard(cut)
        self.log.info("call.barge_in", cut_sentences=len(cut))

    def _keep_only_heard(self, cut: list[Utterance]) -> None:
        """Drop the unheard sentences from the agent's last history turn."""
        if not cut or not self.state.history or self.state.history[-1].role != "assistant":
            return
        last = self.state.history[-1]
        for utterance in cut:
            last.content = last.content.replace(utterance.text, "").strip()
        self.recorder.mark_interrupted()

    # ---- the call ----

    async def run(self) -> None:
        self.services.metrics.active_calls.inc()
        try:
            async with asyncio.TaskGroup() as tg:
                turns = tg.create_task(self._turn_loop(tg))
                tasks = [
                    turns,
                    tg.create_task(self.playout.run()),
                    tg.create_task(self._max_duration(tg, turns)),
                    tg.create_task(self._watch_peer()),
                ]
                await self.ended.wait()
                for task in tasks:
                    task.cancel()
        finally:
            self.services.metrics.active_calls.dec()
            self.services.metrics.playout_underruns.inc(self.playout.underruns)
            await self.recorder.finish(self.state)

    async def _watch_peer(self) -> None:
        try:
            await self.send_guard.watch()
        except PeerStalledError as exc:
            self.log.warning("call.peer_stalled", error=exc.message)
            self.ended.set()

    def end_call(self, reason: str, goodbye_text: str) -> None:
        """End the call now, politely: the agent stops, says ``goodbye_text`` and hangs up
        (as at max duration). Called from outside the call, e.g. by a draining process."""
        if not self._end_requested.is_set():
            self._end_reason, self._end_goodbye = reason, goodbye_text
            self._end_requested.set()

    async def _max_duration(self, tg: asyncio.TaskGroup, turns: asyncio.Task[None]) -> None:
        """At the limit (or on end_call), stop whatever the agent is doing, say goodbye,
        and hang up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.services.settings.max_call_duration_s):
                await self._end_requested.wait()
        self.log.info("call.ending", reason=self._end_reason)
        turns.cancel()
        if self._speaking is not None:
            self._speaking.cancel()
        if self.playout.speaking:
            await self.playout.clear()
        goodbye = Reply(
            text=self._end_goodbye,
            intent=self._end_reason,
            actions=(),
            end_call=True,
            transfer=False,
        )
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S + self.services.settings.ws_send_timeout_s):
                await self._say(tg, goodbye, TurnTimings(started_at=time.monotonic()))
        finally:
            self.ended.set()

    async def _turn_loop(self, tg: asyncio.TaskGroup) -> None:
        reply = await self.brain.greet(self.state)
        await self._say(tg, reply, TurnTimings(started_at=self.started_at))
        silences = 0
        while not self.ended.is_set():
            item = await self._next_input()
            if item is None:
                silences += 1
                reply = await self.brain.on_silence(self.state, count=silences, now=self._now())
                await self._say(tg, reply, TurnTimings(started_at=time.monotonic()))
                continue
            silences = 0
            if isinstance(item, DtmfIn):
                reply = await self.brain.on_dtmf(self.state, item.digit, now=self._now())
                await self._say(tg, reply, TurnTimings(started_at=time.monotonic()))
                continue
            await self._handle_utterance(tg, item)

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
            try:
                return await asyncio.wait_for(self._inbox.get(), timeout=wait_s)
            except TimeoutError:
                continue

    def _quiet_since(self) -> float | None:
        """When the line fell silent (agent done playing, caller done speaking); None while
        either is talking."""
        if self.playout.speaking or self.endpointer.in_speech:
            return None
        return max(self.playout.idle_since, self._caller_quiet_since)

    async def _handle_utterance(self, tg: asyncio.TaskGroup, item: UtteranceIn) -> None:
        timings = TurnTimings(started_at=item.decided_at, speech_end_at=item.speech_end_at)
        recognizer = self.services.recognizer
        text = ""
        if recognizer is not None:
            # The turn loop speaks only the streaming shape, so a recognizer with partial
            # transcripts plugs in here unchanged.
            stream = recognizer.open_stream(sample_rate_hz=INBOUND_RATE_HZ, language=LANGUAGE)
            try:
                stream.push(item.audio)
                transcript = await stream.finish()
                text = transcript.text.strip()
            except ProviderError as exc:
                self.services.metrics.provider_errors.labels("stt", exc.code).inc()
                self.log.warning("call.stt_failed", error=exc.message)
                await self._say(tg, _apology(), timings)
                return
            finally:
                await stream.aclose()
        timings.stt_done_at = time.monotonic()
        if not text:
            return
        self.recorder.user_turn(text)
        await self._say_stream(
            tg, self.brain.respond_stream(self.state, text, now=self._now()), timings
        )

    async def _say(self, tg: asyncio.TaskGroup, reply: Reply, timings: TurnTimings) -> None:
        await self._say_stream(tg, stream_of(reply), timings)

    async def _say_stream(
        self, tg: asyncio.TaskGroup, events: AsyncGenerator[ReplyEvent, None], timings: TurnTimings
    ) -> None:
        """Speak a reply sentence by sentence as the brain produces it; a barge-in cancels
        the task, which cancels the brain's in-flight LLM and TTS work with it."""
        spoken: list[str] = []
        final: list[Reply] = []
        self._speaking = tg.create_task(self.speaker.speak(events, timings, spoken, final))
        await asyncio.wait({self._speaking})
        interrupted = self._speaking.cancelled()
        reply = final[0] if final else _partial(spoken)
        self.recorder.agent_turn(reply, timings, interrupted=interrupted)
        await self.services.store.save(
            self.call_sid, self.state.to_dict(), ttl_s=self.services.settings.turn_state_ttl_s
        )
        self.services.metrics.turns.inc()
        await self.recorder.flush()
        if reply.end_call or reply.transfer:
            await self._finish(reply)

    async def _finish(self, reply: Reply) -> None:
        await self.playout.wait_drained(DRAIN_TIMEOUT_S)
        dialer = self.services.dialer
        try:
            if reply.transfer and dialer is not None and self.services.settings.transfer_number:
                await dialer.redirect_to_dial(self.call_sid, self.services.settings.transfer_number)
            elif dialer is not None:
                await dialer.hangup(self.call_sid)
        except TelephonyError as exc:
            self.log.warning("call.hangup_failed", error=exc.message)
        self.ended.set()


def _apology() -> Reply:
    return Reply(
        text=APOLOGY_TEXT, intent="provider_error", actions=(), end_call=False, transfer=False
    )


def _partial(spoken: list[str]) -> Reply:
    """What was said of a reply whose stream was cut before it finished."""
    return Reply(
        text=" ".join(spoken), intent="interrupted", actions=(), end_call=False, transfer=False
    )
