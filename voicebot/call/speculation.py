"""Speculative replies: what lets a reply be prepared before the caller's turn is over.

At the first short pause the session recognises the utterance so far and, once the
words are in, starts the reply (brain and the first sentences' TTS) while the end of
the turn is still being confirmed. This module owns the three things that keep such a
reply harmless until it is confirmed:

* :class:`HeldSink` stands between the speaker and the playout: utterances and frames
  are kept aside (no mark is pending, nothing is sent, the playout does not count as
  speaking) until :meth:`HeldSink.release` hands them over in order; after that it is
  the playout;
* :class:`ToolGate` wraps the brain's booking tools: reads go through, every write
  (booking, callback, opt-out, not-interested) waits until the gate is opened, so a
  speculative reply never books a meeting the caller did not finish asking for;
* :func:`snapshot` / :func:`restore` put the conversation state back as it was when a
  speculative reply is discarded (brains update the stage, slots and history as they
  run);
* :func:`same_words` says whether a streaming partial transcript, on which a reply was
  started, says what the final transcript says (the reply then stands).

A discarded reply writes nothing: no history, no transcript, no turn in the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from voicebot.brain.base import BookingResult, BookingTools, ConversationState
from voicebot.brain.normalize import normalize
from voicebot.call.playout import Playout, Utterance
from voicebot.providers.base import Transcript

if TYPE_CHECKING:
    from voicebot.call.speech_handle import SpeechHandle


class HeldSink:
    """The playout's speaker-facing side, held closed until :meth:`release`."""

    def __init__(self, playout: Playout) -> None:
        self._playout = playout
        self._held = True
        self._utterances: list[Utterance] = []
        self._frames: dict[str, list[bytes]] = {}

    @property
    def held(self) -> bool:
        return self._held

    @property
    def held_frames(self) -> int:
        """Frames kept aside so far (the reply's audio ready before confirmation)."""
        return sum(len(frames) for frames in self._frames.values())

    def new_utterance(self, text: str) -> Utterance:
        if not self._held:
            return self._playout.new_utterance(text)
        utterance = self._playout.detached_utterance(text)
        self._utterances.append(utterance)
        self._frames[utterance.mark] = []
        return utterance

    def push_frames(self, utterance: Utterance, frames: list[bytes]) -> None:
        if not self._held or utterance.mark not in self._frames:
            self._playout.push_frames(utterance, frames)
            return
        self._frames[utterance.mark].extend(frames)

    def end_utterance(self, utterance: Utterance) -> None:
        if not self._held or utterance.mark not in self._frames:
            self._playout.end_utterance(utterance)
            return
        utterance.done_enqueuing = True

    def release(self) -> None:
        """Hand everything held to the playout, in order; from now on pass through."""
        if not self._held:
            return
        self._held = False
        for utterance in self._utterances:
            frames = self._frames.pop(utterance.mark)
            done = utterance.done_enqueuing
            utterance.done_enqueuing = False
            self._playout.attach_utterance(utterance)
            self._playout.push_frames(utterance, frames)
            if done:
                self._playout.end_utterance(utterance)
        self._utterances.clear()

    def discard(self) -> None:
        """Forget what was held (the speculation was wrong)."""
        self._utterances.clear()
        self._frames.clear()


class ToolGate:
    """:class:`BookingTools` whose writes wait while the gate is held."""

    def __init__(self, tools: BookingTools) -> None:
        self._tools = tools
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def available_slots(
        self, *, day: date | None, now: datetime, limit: int
    ) -> list[datetime]:
        return await self._tools.available_slots(day=day, now=now, limit=limit)

    async def book_meeting(self, *, start: datetime, notes: str | None) -> BookingResult:
        await self._open.wait()
        return await self._tools.book_meeting(start=start, notes=notes)

    async def schedule_callback(self, *, when: datetime) -> None:
        await self._open.wait()
        await self._tools.schedule_callback(when=when)

    async def mark_not_interested(self, *, reason: str) -> None:
        await self._open.wait()
        await self._tools.mark_not_interested(reason=reason)

    async def add_to_do_not_call(self) -> None:
        await self._open.wait()
        await self._tools.add_to_do_not_call()

    def __getattr__(self, name: str) -> Any:
        # Anything else a brain reads from its tools (their clock) is the wrapped tools'.
        return getattr(self._tools, name)


def snapshot(state: ConversationState) -> dict[str, Any]:
    return state.to_dict()


def restore(state: ConversationState, data: dict[str, Any]) -> None:
    """Put ``state`` back, in place (the session and its handles hold this object)."""
    earlier = ConversationState.from_dict(data)
    for f in fields(ConversationState):
        setattr(state, f.name, getattr(earlier, f.name))


def same_words(partial: str, final: str) -> bool:
    """The two transcripts have the same words once normalised (niqqud, punctuation,
    fillers, final letters and spelling variants aside): a reply to one answers the other."""
    return normalize(partial).split() == normalize(final).split()


@dataclass(eq=False)
class Speculation:
    """One speculative turn: the paused utterance, its recognition and its held reply.

    ``task`` recognises ``audio`` and starts ``handle``; ``carry`` and ``turn_mark`` (the
    session's last turn id) are what the session's state was when the reply began: a
    reply made on other grounds is stale.
    """

    audio: bytes
    end_ms: int
    started_at: float
    speech_end_at: float
    carry: str | None
    turn_mark: int = -1
    task: asyncio.Task[None] | None = None
    text: str | None = None
    recognised_at: float | None = None
    dropped: bool = False
    streamed: asyncio.Future[Transcript] | None = None  # streaming STT's final of the audio
    partial: str = ""  # streaming STT's partial transcript at the pause
    error: BaseException | None = None
    handle: SpeechHandle | None = None
    sink: HeldSink | None = None
    state_before: dict[str, Any] = field(default_factory=dict)
    recognised: asyncio.Event = field(default_factory=asyncio.Event)
