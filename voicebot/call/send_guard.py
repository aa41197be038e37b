"""Bounded sends to the caller's websocket without a timer per frame.

A call sends fifty frames a second; wrapping each send in its own ``asyncio.timeout``
costs more than the send. Instead every send records when it started, and one
watchdog per call checks a few times per timeout period whether the send in flight
has been stuck too long. A half-dead peer (TCP buffers full, nobody reading) so ends
its own call within ``send_timeout_s`` plus a quarter of it, and never stalls another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from voicebot.errors import PeerStalledError

P = ParamSpec("P")
WATCH_DIVISIONS = 4  # checks per timeout period


class SendGuard:
    """Wraps a call's send callables; :meth:`watch` raises when one send hangs."""

    __slots__ = ("_in_flight", "_in_flight_since", "_loop", "_timeout_s")

    def __init__(self, *, send_timeout_s: float) -> None:
        self._timeout_s = send_timeout_s
        self._in_flight = 0
        self._in_flight_since: float | None = None
        self._loop = asyncio.get_running_loop()

    def guard(self, send: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
        """``send`` with its duration watched. Sends of one call may overlap (a barge-in's
        `clear` while a frame waits on a full socket, that frame's task then cancelled):
        the watch runs while any is in flight, and one ending (done or cancelled) while
        another still waits watches the other from then on."""

        async def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
            if not self._in_flight:
                self._in_flight_since = self._loop.time()
            self._in_flight += 1
            try:
                await send(*args, **kwargs)
            finally:
                self._in_flight -= 1
                self._in_flight_since = self._loop.time() if self._in_flight else None

        return guarded

    async def watch(self) -> None:
        """Run for the whole call; raise :class:`PeerStalledError` when a send hangs."""
        period_s = self._timeout_s / WATCH_DIVISIONS
        while True:
            await asyncio.sleep(period_s)
            since = self._in_flight_since
            if since is not None and self._loop.time() - since > self._timeout_s:
                raise PeerStalledError(
                    f"a websocket send has not completed in {self._timeout_s:.1f} s"
                )
