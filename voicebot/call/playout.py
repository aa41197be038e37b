"""Outbound audio for one call: paced 20 ms frames, marks after sentences, `clear` on barge-in.

Frames are sent a little ahead of real time (``PLAYOUT_LEAD_S``) so Twilio's buffer
never runs dry, but never far ahead, so a `clear` cuts the agent off at once.
What the caller heard is known from the marks Twilio echoes back: a mark echoed
after we sent `clear` was not played.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

FRAME_S = 0.020
PLAYOUT_LEAD_S = 0.200
PLAYOUT_REFILL_S = 0.100
_EPSILON_S = 1e-6  # 10 x 0.020 s is not exactly 0.200 s in floats

SendMedia = Callable[[bytes], Awaitable[None]]
SendMark = Callable[[str], Awaitable[None]]
SendClear = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Utterance:
    """One sentence of agent speech in flight.

    ``frames_sent`` counts frames queued, ``frames_out`` frames handed to the socket;
    ``first_sent_at`` is when the first of them left, ``play_start_at`` when Twilio
    starts playing it (the playout's clock). ``heard`` is set when its mark comes back;
    a `clear` sets ``cut`` and ``heard_fraction`` (the share played before the cut).
    """

    mark: str
    text: str
    frames_sent: int = 0
    frames_out: int = 0
    first_sent_at: float | None = None
    play_start_at: float | None = None
    heard: bool = False
    done_enqueuing: bool = False
    cut: bool = False
    heard_fraction: float = 0.0

    def played_fraction(self, now: float) -> float:
        """Share of this sentence's queued audio played by ``now`` (0.0 to 1.0)."""
        if self.heard:
            return 1.0
        if self.play_start_at is None or not self.frames_sent:
            return 0.0
        played_s = min(now - self.play_start_at, self.frames_out * FRAME_S)
        return max(0.0, min(1.0, played_s / (self.frames_sent * FRAME_S)))


class AudioSink(Protocol):
    """Where a reply's sentences go: the playout, or a holder in front of it."""

    def new_utterance(self, text: str) -> Utterance: ...

    def push_frames(self, utterance: Utterance, frames: list[bytes]) -> None: ...

    def end_utterance(self, utterance: Utterance) -> None: ...


_Entry = bytes | Utterance | str
"""A queued entry: a 20 ms frame (``bytes``) of the utterance queued before it, an
:class:`Utterance` whose frames follow, or a mark name (``str``). Frames stay bare bytes,
which the garbage collector does not track: a call queues up to a few hundred of them,
and as objects (one per frame, living seconds) they made up a fifth of the heap the
collector walked at 200 calls, and its full collections with them."""


@dataclass
class Playout:
    send_media: SendMedia
    send_mark: SendMark
    send_clear: SendClear
    clock: Callable[[], float] = time.monotonic
    _queue: deque[_Entry] = field(default_factory=deque)
    _tail: Utterance | None = None  # the utterance whose frames end the queue
    _playing: Utterance | None = None  # the utterance whose frames are being sent
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _play_until: float = 0.0
    _pending_marks: dict[str, Utterance] = field(default_factory=dict)
    _drained: asyncio.Event = field(default_factory=asyncio.Event)
    first_frame_at: float | None = None
    underruns: int = 0
    _seq: int = 0
    _mid_utterance: bool = False
    _drained_at: float = 0.0
    _epoch: int = 0  # bumped by drop(): a send awaited across it must not resume its batch
    _sending: bool = False  # a batch of sends is in progress (run() or pump())
    _send_done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._drained.set()

    @property
    def idle_since(self) -> float:
        """When the agent's last audio finished playing (its mark came back, or `clear`)."""
        return max(self._drained_at, self._play_until)

    @property
    def speaking(self) -> bool:
        """True while agent audio is queued or still playing at Twilio."""
        return bool(self._queue) or self.clock() < self._play_until or bool(self._pending_marks)

    def new_utterance(self, text: str) -> Utterance:
        utterance = self.detached_utterance(text)
        self.attach_utterance(utterance)
        return utterance

    def detached_utterance(self, text: str) -> Utterance:
        """An utterance with its mark name, not yet pending (a reply held back until its
        turn is confirmed): :meth:`attach_utterance` before pushing its frames."""
        self._seq += 1
        return Utterance(mark=f"u{self._seq}", text=text)

    def attach_utterance(self, utterance: Utterance) -> None:
        self._pending_marks[utterance.mark] = utterance
        self._drained.clear()

    def push_frames(self, utterance: Utterance, frames: list[bytes]) -> None:
        if utterance.cut or not frames:
            return  # cleared by a barge-in: never sent
        if self._tail is not utterance:
            self._queue.append(utterance)
            self._tail = utterance
        self._queue.extend(frames)
        utterance.frames_sent += len(frames)
        self._wake.set()

    def end_utterance(self, utterance: Utterance) -> None:
        utterance.done_enqueuing = True
        if utterance.cut:
            return
        self._queue.append(utterance.mark)
        self._tail = None
        self._wake.set()

    def on_mark(self, name: str) -> Utterance | None:
        """Twilio echoed a mark: the utterance before it was played in full."""
        utterance = self._pending_marks.pop(name, None)
        if utterance is not None:
            utterance.heard = True
        if not self._pending_marks and not self._queue:
            self._drained.set()
            self._drained_at = self.clock()
        return utterance

    def expire_marks(self) -> list[Utterance]:
        """Marks Twilio never echoed: an utterance whose audio all went out and, by the
        playout clock, has finished playing is taken as heard (its mark is forgotten);
        returns those utterances. Audio still queued or playing is left alone."""
        now = self.clock()
        expired = [
            utterance
            for utterance in self._pending_marks.values()
            if utterance.done_enqueuing
            and utterance.frames_out == utterance.frames_sent
            and (not utterance.frames_sent or utterance.played_fraction(now) >= 1.0)
        ]
        for utterance in expired:
            self.on_mark(utterance.mark)
        return expired

    async def clear(self) -> list[Utterance]:
        """Barge-in: drop queued audio, tell Twilio to flush; returns the cut utterances."""
        cut = self.drop()
        await self.send_clear()
        return cut

    def drop(self) -> list[Utterance]:
        """Drop queued audio and pending marks without telling Twilio (the stream is
        over); returns the cut utterances, each with the share of it that played."""
        self._epoch += 1
        self._queue.clear()
        self._tail = self._playing = None
        cut = list(self._pending_marks.values())
        now = self.clock()
        for utterance in cut:
            utterance.heard_fraction = utterance.played_fraction(now)
            utterance.cut = True
        self._pending_marks.clear()
        self._play_until = 0.0
        self._mid_utterance = False
        self._drained.set()
        self._drained_at = self.clock()
        return cut

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait until every mark came back (all agent audio played)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Send queued frames paced to real time with a small lead; forever (cancel to stop)."""
        queue = self._queue
        clock = self.clock
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._sending:
                # pump() is sending from its caller's task (the socket is slow): let it.
                self._send_done.clear()
                await self._send_done.wait()
                continue
            await self._send_due()
            if queue:
                await asyncio.sleep(max(0.0, self._play_until - clock() - PLAYOUT_REFILL_S))

    async def pump(self) -> None:
        """Send what is due now from the caller's task, as :meth:`run` would when it next
        wakes: a reply's first frames leave as they are queued, not a loop iteration later
        (under load an iteration takes milliseconds). Does nothing while a send is in
        progress (that sender goes on with the queue)."""
        if self._queue and not self._sending:
            await self._send_due()

    async def _send_due(self) -> None:
        """Send while less than the lead is queued at Twilio; one sender at a time."""
        queue = self._queue
        clock = self.clock
        send_media = self.send_media
        self._sending = True
        try:
            now = clock()
            if self._play_until < now:
                if self._mid_utterance:
                    self.underruns += 1
                self._play_until = now
            # A drop() during a send resets the state, so it is read again after every await.
            lead_until = now + (PLAYOUT_LEAD_S - _EPSILON_S)
            while queue and self._play_until < lead_until:
                entry = queue.popleft()
                if isinstance(entry, bytes):
                    utterance = self._playing
                    if self.first_frame_at is None:
                        self.first_frame_at = now
                    if utterance is not None and utterance.play_start_at is None:
                        utterance.play_start_at = self._play_until
                    epoch = self._epoch
                    await send_media(entry)
                    if utterance is not None:
                        utterance.frames_out += 1
                        if utterance.first_sent_at is None:
                            utterance.first_sent_at = clock()
                    if self._epoch != epoch:
                        return  # dropped while sending: start afresh
                    self._play_until += FRAME_S
                    self._mid_utterance = True
                elif isinstance(entry, Utterance):
                    self._playing = entry
                else:
                    epoch = self._epoch
                    await self.send_mark(entry)
                    self._mid_utterance = False
                    if self._epoch != epoch:
                        return  # dropped while sending: start afresh
        finally:
            self._sending = False
            self._send_done.set()
