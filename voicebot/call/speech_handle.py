"""One agent reply as an object: from the brain's first token to what the caller heard.

The session creates a :class:`SpeechHandle` for every reply (greeting, answer, key,
check-in, goodbye). The handle owns the reply's generation task (brain stream → TTS →
playout, run by the :class:`~voicebot.call.speaker.Speaker`), knows which sentences were
queued, which were played (their marks came back) and which were cut, and is the only
writer of the agent's turn into the conversation history and the stored transcript,
once, with the text as heard:

* done playing: every queued sentence's mark came back → the whole reply is committed;
* :meth:`interrupt` (barge-in, a key, ``stop``, max duration, hang-up): the generation
  task is cancelled (closing the in-flight LLM and TTS requests), queued audio is
  cleared, and only what was played is committed, marked interrupted: whole sentences
  whose marks came back, and the played share of the sentence cut mid-way.

Brains read history; whatever a brain appended of the agent's reply while it ran is
replaced by the heard text at commit (the caller's own words it appended are kept).
A reply interrupted by the caller speaking again before any of it was played is
*dropped*: nothing of it is committed and :attr:`dropped_user_text` hands the caller's
words back to the session, which answers them together with the new utterance. A reply
cut for any other reason (barge-in, a key, ``stop``) before any of it was played stores
the caller's words but no agent turn: the transcript holds only what was said.

A *speculative* reply (prepared while the end of the caller's turn is being confirmed)
runs with a held sink: its audio waits until the session confirms the turn (then it is
an ordinary reply) or :meth:`discard` drops it, writing nothing anywhere.

Side effects and endings of an interrupted reply: whatever the brain already did while
generating it stands (a booked meeting, a do-not-call entry, a scheduled callback, the
conversation's outcome): it happened, and the brain's state and the database say so.
Its request to end the call (``end_call``, or a transfer) stands only when the caller did
not cut the reply: a reply the caller interrupted (speech over it, speech before it
played, a key; :data:`CALLER_REASONS`) never hangs up or transfers, because the caller
is talking; the next reply, which answers what they said, decides again. A reply cut
before its final event carries no end request at all (the brain never delivered it).
Interruptions that are not the caller's (lost marks) keep the end.
:attr:`end_request` is what the session acts on.

Failure: the generation task never raises into the call's TaskGroup; an unexpected
exception is kept in :attr:`error` for the session to act on (apology and goodbye).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from voicebot.brain.base import ChatTurn, ConversationState, Reply, ReplyEvent, stream_of
from voicebot.call.playout import FRAME_S, AudioSink, Playout, Utterance
from voicebot.call.recorder import CallRecorder, TurnTimings
from voicebot.call.speaker import Speaker

# How long interrupt() waits for the generation task to unwind after cancelling it.
CANCEL_WAIT_S = 0.5
# Reasons whose reply, if none of it was played, is dropped and its words carried over.
CARRY_OVER_REASONS = frozenset({"caller_spoke"})
# Interruptions by the caller (speech over the reply, speech before it played, a key): the
# reply's end_call or transfer is void.
CALLER_REASONS = frozenset({"barge_in", "caller_spoke", "dtmf"})

ReplySource = Callable[[], AsyncGenerator[ReplyEvent, None]]


def from_reply(make: Callable[[], Awaitable[Reply]]) -> ReplySource:
    """A reply source for a brain call that returns a whole :class:`Reply` (greet, key,
    silence): the brain runs inside the handle's task, so it is cancelled with it."""

    async def events() -> AsyncGenerator[ReplyEvent, None]:
        reply = await make()
        async for event in stream_of(reply):
            yield event

    return events


def fixed(reply: Reply) -> ReplySource:
    """A reply source for a fixed phrase (apology, goodbye)."""
    return lambda: stream_of(reply)


class SpeechHandle:
    """One reply of one call; see the module docstring. Create, then :meth:`start`."""

    def __init__(
        self,
        *,
        turn_id: int,
        source: ReplySource,
        timings: TurnTimings,
        state: ConversationState,
        playout: Playout,
        speaker: Speaker,
        recorder: CallRecorder,
        log: Any,
        user_text: str | None = None,
        interruptible: bool = True,
        sink: AudioSink | None = None,
    ) -> None:
        self.turn_id = turn_id
        self.timings = timings
        self.user_text = user_text
        self.interruptible = interruptible
        self.log = log
        self.utterances: list[Utterance] = []
        self.final: Reply | None = None
        self.interrupted: str | None = None
        self.error: BaseException | None = None
        self.heard_text = ""
        self.dropped_user_text: str | None = None
        self._source = source
        self._state = state
        self._playout = playout
        self.sink: AudioSink = playout if sink is None else sink
        self.discarded = False
        self._speaker = speaker
        self._recorder = recorder
        self._history_mark = len(state.history)
        self._task: asyncio.Task[None] | None = None
        self._generated = asyncio.Event()
        self._committed = asyncio.Event()

    # ---- lifecycle ----

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Run the generation task in the call's TaskGroup."""
        self._task = tg.create_task(self._generate(), name=f"speech-{self.turn_id}")

    async def _generate(self) -> None:
        try:
            await self._speaker.speak(self._source(), self)
        except Exception as exc:  # kept for the session to act on: apology and goodbye
            self.error = exc
        finally:
            self._generated.set()
            self.check_played()

    @property
    def history_mark(self) -> int:
        """Length of the history before this reply: what follows is the reply's."""
        return self._history_mark

    @property
    def generated(self) -> bool:
        """The reply's stream is over (finished, failed or cancelled)."""
        return self._generated.is_set()

    @property
    def committed(self) -> bool:
        return self._committed.is_set()

    @property
    def started_playing(self) -> bool:
        """Some of the reply's audio has gone to the caller."""
        return any(u.first_sent_at is not None for u in self.utterances)

    @property
    def audio_s(self) -> float:
        """Seconds of audio queued for this reply."""
        return sum(u.frames_sent for u in self.utterances) * FRAME_S

    @property
    def cut_by_caller(self) -> bool:
        """The caller interrupted this reply (speech or a key)."""
        return self.interrupted in CALLER_REASONS

    @property
    def end_request(self) -> Reply | None:
        """The final reply when it ends the call (``end_call`` or ``transfer``) and that
        end still stands: None when the brain asked for none, never delivered its final
        event, or the caller cut the reply (see the module docstring)."""
        final = self.final
        if final is None or not (final.end_call or final.transfer) or self.cut_by_caller:
            return None
        return final

    async def wait_generated(self) -> None:
        await self._generated.wait()

    async def wait_played(self, timeout_s: float | None = None) -> bool:
        """Wait until the reply was committed (played in full, or interrupted); False
        when ``timeout_s`` ran out first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._committed.wait()
        except TimeoutError:
            return False
        return True

    def check_played(self) -> None:
        """Commit once the stream is over and every queued sentence was played (the
        session calls this after each mark)."""
        if self.committed or not self.generated or getattr(self.sink, "held", False):
            return
        if all(u.heard for u in self.utterances if not u.cut):
            self._commit()

    async def interrupt(self, reason: str, *, clear: bool = True) -> None:
        """Stop this reply now: cancel its generation (LLM and TTS requests close with
        it), clear its queued audio (``clear=False`` when the socket is gone), commit
        what was heard. Idempotent."""
        if self.committed:
            return
        if self.interrupted is None:
            self.interrupted = reason
        task = self._task
        running = task is not None and not task.done() and task is not asyncio.current_task()
        if running and task is not None:
            task.cancel()  # takes effect at its next await: nothing more is queued
        # Silence first (the caller is talking over us), then let the requests unwind.
        if any(not u.heard and not u.cut for u in self.utterances):
            if clear:
                await self._playout.clear()
            else:
                self._playout.drop()
        if running and task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
        self._generated.set()
        self._commit()

    def confirm_user_text(self, text: str) -> None:
        """The caller's words this reply answers, as finally recognised (the reply was
        started on an interim transcript that says the same words in another form:
        niqqud, punctuation, fillers): the stored turn and the history say ``text``."""
        earlier, self.user_text = self.user_text, text
        for turn in self._state.history[self._history_mark :]:
            if turn.role == "user" and turn.content == earlier:
                turn.content = text

    async def discard(self) -> None:
        """Drop a reply that was never released to the caller (its turn was not over):
        cancel its generation and take back what the brain wrote to history; nothing is
        committed or recorded. The caller of this restores the rest of the state."""
        if self.committed:
            return
        self.discarded = True
        self.interrupted = "discarded"
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
        del self._state.history[self._history_mark :]
        self._generated.set()
        self._committed.set()

    # ---- the one write of the agent's turn ----

    def _heard(self) -> str:
        parts: list[str] = []
        for utterance in self.utterances:
            if not utterance.text:
                continue
            if utterance.heard:
                parts.append(utterance.text)
            elif utterance.cut and utterance.heard_fraction > 0:
                words = utterance.text.split()
                count = round(len(words) * utterance.heard_fraction)
                if count:
                    parts.append(" ".join(words[:count]))
        return " ".join(parts)

    def _commit(self) -> None:
        if self.committed:
            return
        self._committed.set()
        interrupted = self.interrupted is not None
        self.heard_text = self._heard() if interrupted else _joined(self.utterances)
        added = self._state.history[self._history_mark :]
        del self._state.history[self._history_mark :]
        if interrupted and not self.heard_text and self.interrupted in CARRY_OVER_REASONS:
            # Nothing was played: the reply never happened; its words return to the session.
            self.dropped_user_text = self.user_text
            self.log.info("call.reply_dropped", turn=self.turn_id, reason=self.interrupted)
            return
        # The brain may have appended the caller's words (kept) and its own reply (replaced
        # by what was heard).
        self._state.history.extend(t for t in added if t.role != "assistant")
        if self.user_text is not None and not any(t.role == "user" for t in added):
            self._state.history.append(ChatTurn(role="user", content=self.user_text))
        if self.heard_text:
            self._state.history.append(ChatTurn(role="assistant", content=self.heard_text))
        if self.user_text is not None:
            self._recorder.user_turn(self.user_text)
        # A reply cut before any of it played is not a turn of the conversation: nothing
        # of it is stored (the transcript holds what was said on the line).
        if self.heard_text or (self.final is not None and not interrupted):
            self.timings.first_frame_at = self._first_sent_at()
            final = self.final
            reply = Reply(
                text=self.heard_text,
                intent=final.intent if final is not None else "interrupted",
                actions=final.actions if final is not None else (),
                end_call=final.end_call and not self.cut_by_caller if final else False,
                transfer=final.transfer and not self.cut_by_caller if final else False,
            )
            self._recorder.agent_turn(reply, self.timings, interrupted=interrupted)
        if interrupted:
            self.log.info(
                "call.reply_interrupted",
                turn=self.turn_id,
                reason=self.interrupted,
                heard_chars=len(self.heard_text),
                queued_sentences=len(self.utterances),
            )

    def _first_sent_at(self) -> float | None:
        for utterance in self.utterances:
            if utterance.first_sent_at is not None:
                return utterance.first_sent_at
        return None


def _joined(utterances: list[Utterance]) -> str:
    return " ".join(u.text for u in utterances if u.text)
