"""The voice webhook's hand-over to its call's Media Stream, within one process.

The webhook has just read the call's lead, campaign script and recording setting; the
stream's ``start`` arrives a second later, usually at the same process. Reading them again
there, and waiting for the stream's claim on the call row before the greeting, put two
database statements (on SQLite nine trips to its driver thread through a busy event loop)
between Twilio's ``start`` and the greeting's first frame: at 200 live calls that was
p99 45–60 ms of the greeting's 65.

With a hand-over the stream starts at once on what the webhook read, and claims the call
row beside the greeting (:class:`voicebot.call.session.CallSession` holds the caller's
audio, the turn writes and the saved state until the claim holds, and ends the stream
without any bookkeeping if it is refused). A stream without a hand-over (another process
answered the webhook, the hand-over expired, a token used twice) takes the old path: claim
and read first, then the session.

One stream per call in this process: the first stream takes the hand-over and holds the
call (:meth:`StreamHandoffs.held`) until its session ends, so a token replayed here is
refused before any database statement, as the claim would refuse it. Across processes the
call row decides, as before: the first claim to commit holds the call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from cachetools import TTLCache

from voicebot.brain.base import LeadContext
from voicebot.brain.script import AgentScript

HANDOFF_TTL_S: Final = 15.0
"""How long a hand-over waits for its stream (the registry's admission hold: Twilio
opens the stream within a second or two of the webhook's answer)."""
HANDOFF_MAX: Final = 10_000
"""Hand-overs kept at most; the oldest goes first (its stream then reads the database)."""


@dataclass(frozen=True, slots=True)
class StreamHandoff:
    """What the voice webhook read for the call's stream: its call id, lead (None for an
    unknown caller without a valid number), campaign script (None: the default script)
    and whether its campaign records calls."""

    call_id: int
    lead: LeadContext | None
    script: AgentScript | None
    records: bool


class StreamHandoffs:
    """Hand-overs by call SID, bounded in number and age (cachetools' ``TTLCache`` on the
    monotonic clock), and the calls whose stream holds them here."""

    def __init__(
        self,
        *,
        ttl_s: float = HANDOFF_TTL_S,
        maxsize: int = HANDOFF_MAX,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._waiting: TTLCache[str, StreamHandoff] = TTLCache(maxsize, ttl_s, timer=timer)
        self._held: set[int] = set()

    def put(self, call_sid: str, handoff: StreamHandoff) -> None:
        """Leave ``handoff`` for the call's stream (a retried webhook replaces it); none
        while a stream of this process holds the call."""
        if handoff.call_id in self._held:
            return
        self._waiting[call_sid] = handoff

    def take(self, call_id: int, call_sid: str) -> StreamHandoff | None:
        """The call's hand-over, once: None when there is none (or not for this call id),
        it expired or was dropped, or a stream of this process holds the call already."""
        if call_id in self._held:
            return None
        handoff = self._waiting.get(call_sid)
        if handoff is None or handoff.call_id != call_id:
            return None
        del self._waiting[call_sid]
        return handoff

    def drop(self, call_sid: str) -> None:
        """Forget the call's hand-over: Twilio reported the call over before its stream
        started, so the stream takes the claim first and is refused before any audio."""
        self._waiting.pop(call_sid, None)

    def held(self, call_id: int) -> bool:
        """A stream of this process runs the call on a hand-over (its claim may not have
        committed yet): any other stream for it is refused."""
        return call_id in self._held

    @contextlib.contextmanager
    def hold(self, call_id: int, call_sid: str) -> Iterator[None]:
        """Hold the call for the block (the session that took the hand-over). A hand-over
        left meanwhile (a retried webhook) is refused by :meth:`put`, and any left at the
        end is dropped: the call had its stream, a token replayed later hears nothing."""
        self._held.add(call_id)
        try:
            yield
        finally:
            self._held.discard(call_id)
            self._waiting.pop(call_sid, None)

    def __len__(self) -> int:
        return len(self._waiting)
