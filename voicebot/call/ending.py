"""How one call ends: every way out of it, and the watchdogs that find the silent ones.

:class:`Endings` is owned by one :class:`~voicebot.call.session.CallSession` and acts on
its state. The ways out:

* politely (:meth:`Endings.end_politely`): max duration, an ``end_call`` request from
  outside (a deploy's drain), an unexpected fault: the reply is interrupted, a goodbye
  that cannot be interrupted is said (within ``DRAIN_TIMEOUT_S``), then the call ends and
  is hung up over REST after the stream closes;
* the brain's own end (:meth:`Endings.finish`): the reply drains, then a transfer
  redirects the call over REST, or the call ends and is hung up at the close (end reason
  ``silence`` when the caller left ``silence_max_prompts`` prompts unanswered, else
  ``brain_end``);
* no voice at all (:meth:`Endings.end_voiceless`): ``tts_unavailable``, hung up at once;
* a machine (:meth:`Endings.stop_for_machine`): stop talking, take no more turns; the AMD
  route replaces the TwiML and Twilio's ``stop`` ends the session;
* a dead or stalled peer: a send that found it gone (:meth:`Endings.peer_gone`), no send
  completing within the send timeout (:meth:`Endings.watch_peer`), or no inbound media for
  ``inbound_media_timeout_s`` (:meth:`Endings.watch_inbound`, hung up over REST after
  the close).

The first way out names the call's end reason (:meth:`Endings.record`): a later one (a
drain after a machine stop, the inbound stream dying during the max-duration goodbye)
ends the call the same but never renames why it ended.

Failure: a REST hang-up or transfer that fails is logged and the call ends regardless; a
goodbye that does not play in time is logged (``call.goodbye_not_played``) and cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from voicebot.brain.base import Reply
from voicebot.brain.rules import SILENCE_INTENT
from voicebot.call.recorder import TurnTimings
from voicebot.call.speaker import MAX_DURATION_GOODBYE_TEXT
from voicebot.call.speech_handle import fixed
from voicebot.errors import PeerGoneError, PeerStalledError, TelephonyError, VoiceUnavailableError

if TYPE_CHECKING:
    from voicebot.call.session import CallSession

DRAIN_TIMEOUT_S = 15.0
# Marks normally come back when the audio has played; past this margin they are lost.
PLAYOUT_MARGIN_S = 5.0
INBOUND_WATCH_DIVISIONS = 6  # checks per inbound-media timeout


def brain_end_reason(reply: Reply) -> str:
    """The end reason of a call the brain ended with ``reply``."""
    if reply.transfer:
        return "transfer"
    if reply.intent == SILENCE_INTENT:
        return "silence"  # the caller never answered the check-ins
    return "brain_end"


class Endings:
    """The endings of one call; the end reason, the ``ended`` event and the hang-up at
    the close stay the session's."""

    def __init__(self, call: CallSession) -> None:
        self._call = call

    def record(self, reason: str) -> str:
        """Name why the call ends, unless it already has a reason (the first one stands);
        returns the reason that stands. Every way out records through here."""
        call = self._call
        if call.end_reason is None:
            call.end_reason = reason
        return call.end_reason

    def peer_gone(self, exc: PeerGoneError) -> None:
        call = self._call
        if call.ended.is_set():
            return
        call.log.info("call.peer_gone", error=exc.message)
        self.record("peer_gone")
        call.ended.set()

    def request(self, reason: str, goodbye_text: str | None = None) -> None:
        """Ask the call to end politely, from outside it; :meth:`max_duration` acts on it."""
        call = self._call
        if call._end_request is None:
            call._end_request = (reason, goodbye_text)
            call._end_requested.set()

    async def stop_for_machine(self) -> None:
        """Answering-machine detection said this is not a person: stop talking now
        (``clear``) and take no more turns. No hang-up here: the AMD route replaces the
        call's TwiML over REST (a voicemail message, or a hang-up), and Twilio's ``stop``
        then ends the session. Idempotent."""
        call = self._call
        if call.ended.is_set():
            return
        self.record("machine")
        call.log.info("call.machine_stop")
        turns = call._turns
        if turns is not None and turns is not asyncio.current_task():
            turns.cancel()
        current = call.current
        if current is not None and not current.committed:
            await current.interrupt("machine")
        if call.playout.speaking:
            await call.playout.clear()

    async def end_politely(self, reason: str, goodbye_text: str | None = None) -> None:
        """End the call from within it (max duration, an end_call request, a fault):
        interrupt the reply, say ``goodbye_text`` (not interruptible), hang up over REST,
        end the session. Idempotent; ``reason`` becomes the end reason only if the call has
        none yet (a machine stop before it stands). After a machine stop the session just
        ends: no goodbye to a recording, and no REST hang-up, which would cut the voicemail
        message the AMD route put on the call."""
        call = self._call
        if call._ending or call.ended.is_set():
            return
        call._ending = True
        end_reason = self.record(reason)
        call.log.info("call.ending", reason=reason, end_reason=end_reason)
        if end_reason == "machine":
            call.ended.set()
            return
        turns = call._turns
        if turns is not None and turns is not asyncio.current_task():
            turns.cancel()
        try:
            await call._interrupt_current(reason)
            if goodbye_text and call._tg is not None:
                goodbye = Reply(goodbye_text, reason, (), end_call=True, transfer=False)
                handle = call.turn_loop.start_handle(
                    fixed(goodbye), TurnTimings(started_at=time.monotonic()), interruptible=False
                )
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await handle.wait_generated()
                    await handle.wait_played(handle.audio_s + PLAYOUT_MARGIN_S)
        except TimeoutError:
            call.log.warning("call.goodbye_not_played", reason=reason)
        finally:
            call._hang_up_at_close = True
            call.ended.set()

    async def watch_peer(self) -> None:
        call = self._call
        try:
            await call.send_guard.watch()
        except PeerStalledError as exc:
            call.log.warning("call.peer_stalled", error=exc.message)
            self.record("peer_stalled")
            call.ended.set()

    async def watch_inbound(self) -> None:
        """Twilio sends media every 20 ms for the whole call: none for
        ``inbound_media_timeout_s`` is a partition without a close; the call ends and is
        hung up over REST, whatever the endpointer was doing."""
        call = self._call
        timeout_s = call.services.settings.inbound_media_timeout_s
        if not await call.stream_claimed():
            return
        since = time.monotonic()
        while True:
            await asyncio.sleep(timeout_s / INBOUND_WATCH_DIVISIONS)
            silent_s = time.monotonic() - max(call._last_media_at or since, since)
            if silent_s > timeout_s:
                call.log.warning("call.inbound_media_stopped", silent_ms=round(silent_s * 1000))
                self.record("inbound_media_stopped")
                await call._interrupt_current("inbound_media_stopped")
                # Hung up over REST after the stream closes, never holding the close.
                call._hang_up_at_close = True
                call.ended.set()
                return

    async def max_duration(self) -> None:
        """At the limit (or on an end_call request), stop whatever the agent is doing,
        say goodbye, and hang up."""
        call = self._call
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(call.services.settings.max_call_duration_s):
                await call._end_requested.wait()
        reason, goodbye = call._end_request or ("max_duration", MAX_DURATION_GOODBYE_TEXT)
        await self.end_politely(reason, goodbye)

    async def end_voiceless(self, exc: VoiceUnavailableError) -> None:
        """No voice can speak: hang up at once (a silent call helps nobody) and store
        ``tts_unavailable``, an outcome the campaign retries, unless the brain already
        reached one (a booking made before the voice failed stands)."""
        call = self._call
        call.log.error("call.voice_unavailable", error=exc.message)
        self.record("tts_unavailable")
        call.state.outcome = call.state.outcome or "tts_unavailable"
        call._hang_up_at_close = True
        call.ended.set()

    async def finish(self, reply: Reply) -> None:
        """The brain ended the call with ``reply``: let it drain, then transfer or end."""
        call = self._call
        # Named before the goodbye drains: a way out taken while it plays (the caller
        # hanging up, the inbound stream stopping) came second.
        self.record(brain_end_reason(reply))
        await call.playout.wait_drained(DRAIN_TIMEOUT_S)
        dialer = call.services.dialer
        if reply.transfer and dialer is not None and call.services.settings.transfer_number:
            try:
                await dialer.redirect_to_dial(call.call_sid, call.services.settings.transfer_number)
            except TelephonyError as exc:
                call.log.warning("call.transfer_failed", error=exc.message)
        else:
            call._hang_up_at_close = True
        call.ended.set()

    async def hang_up(self) -> None:
        call = self._call
        dialer = call.services.dialer
        if dialer is None:
            return
        try:
            await dialer.hangup(call.call_sid)
        except TelephonyError as exc:
            call.log.warning("call.hangup_failed", error=exc.message)
