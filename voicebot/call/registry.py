"""The live calls of this process, and whether it still admits new ones.

The voice webhook asks :meth:`CallRegistry.admit` before it answers a call: a process
that is draining (SIGTERM received) or already at ``MAX_CALLS_PER_PROCESS`` says no, and
the webhook redirects Twilio to the load balancer so another instance takes the call. An
admitted call counts from the webhook on (for ``ADMISSION_HOLD_S``, until its Media
Stream opens), so a burst of webhooks cannot overshoot the bound. The media route
registers each running session with :meth:`CallRegistry.track`; :func:`drain` waits for
them to end and, past its deadline, asks the rest to say goodbye and hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Protocol

import structlog

from voicebot.call.handoff import StreamHandoffs

log = structlog.get_logger(__name__)

# How long an admitted call holds its place before its Media Stream opens (Twilio opens
# it within a second or two of the webhook's answer; the stream's start waits 10 s).
ADMISSION_HOLD_S = 15.0
# After the drain deadline, how long the remaining calls get to say goodbye and hang up.
GOODBYE_GRACE_S = 30.0
# How often wait_idle() re-checks admissions that expire by the clock.
IDLE_POLL_S = 0.5
DRAIN_GOODBYE_TEXT = "אני חייבת לסיים את השיחה עכשיו. נחזור אליך בהקדם. תודה ויום טוב!"


class EndableCall(Protocol):
    """What the registry needs of a live call: a way to end it politely."""

    call_sid: str

    def end_call(self, reason: str, goodbye_text: str) -> None: ...


class CallRegistry:
    """Live calls by call SID, admissions pending their stream, and the draining flag."""

    def __init__(self, *, max_calls: int | None = None) -> None:
        self.max_calls = max_calls
        self.draining = False
        self._live: dict[int, EndableCall] = {}
        self._pending: dict[str, float] = {}  # call SID -> monotonic deadline
        self._ended = asyncio.Event()  # set whenever a live call ends
        self.handoffs = StreamHandoffs()  # the voice webhooks' hand-overs to their streams

    @property
    def live(self) -> int:
        """Calls whose Media Stream is running in this process now."""
        return len(self._live)

    def load(self) -> int:
        """Live calls plus admitted calls whose stream has not opened yet."""
        now = time.monotonic()
        for sid in [sid for sid, deadline in self._pending.items() if deadline < now]:
            del self._pending[sid]
        return len(self._live) + len(self._pending)

    def refusal(self) -> str | None:
        """Why a new call would be refused now (``draining``/``full``), or None."""
        if self.draining:
            return "draining"
        if self.max_calls is not None and self.load() >= self.max_calls:
            return "full"
        return None

    def admit(self, call_sid: str) -> str | None:
        """Take a new call (None) or say why not; an admitted call holds its place until
        its stream opens. A call already admitted (a retried webhook) is admitted again."""
        if call_sid in self._pending:
            return None
        reason = self.refusal()
        if reason is None:
            self._pending[call_sid] = time.monotonic() + ADMISSION_HOLD_S
        return reason

    @contextlib.contextmanager
    def track(self, call: EndableCall) -> Iterator[None]:
        """Count ``call`` as live for the block (the media route wraps the session's run).
        A stream that reaches a draining process is still served: its call was admitted."""
        self._pending.pop(call.call_sid, None)
        self._live[id(call)] = call
        try:
            yield
        finally:
            self._live.pop(id(call), None)
            self._ended.set()

    def find(self, call_sid: str) -> EndableCall | None:
        """The live call with this SID when its stream runs in this process, else None."""
        for call in self._live.values():
            if call.call_sid == call_sid:
                return call
        return None

    def start_drain(self) -> None:
        """Admit no new call from now on."""
        if not self.draining:
            self.draining = True
            log.info("drain.started", live=self.live, pending=len(self._pending))

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no call is live and no admitted call is still to open its stream;
        False when ``timeout_s`` ran out first."""
        deadline = time.monotonic() + timeout_s
        while self.load() > 0:
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return False
            # Pending admissions expire by the clock, so wake up now and then.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left_s, IDLE_POLL_S)):
                    await self._ended.wait()
            self._ended.clear()
        return True

    def end_all(self, reason: str, goodbye_text: str) -> int:
        """Ask every live call to say ``goodbye_text`` and hang up; returns how many."""
        calls = list(self._live.values())
        for call in calls:
            call.end_call(reason, goodbye_text)
        return len(calls)


async def drain(
    registry: CallRegistry,
    *,
    timeout_s: float,
    goodbye_text: str = DRAIN_GOODBYE_TEXT,
    grace_s: float = GOODBYE_GRACE_S,
) -> bool:
    """Stop admitting calls, let the live ones finish for up to ``timeout_s``, then end
    the rest with ``goodbye_text`` and wait up to ``grace_s`` for them to hang up.
    True when every call ended by itself."""
    registry.start_drain()
    if await registry.wait_idle(timeout_s):
        log.info("drain.done", ended_by_goodbye=0)
        return True
    ended = registry.end_all("drain", goodbye_text)
    log.warning("drain.deadline", timeout_s=timeout_s, ending=ended)
    if not await registry.wait_idle(grace_s):
        log.error("drain.calls_left", live=registry.live)
    else:
        log.info("drain.done", ended_by_goodbye=ended)
    return False
