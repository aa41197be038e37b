"""``voicebot serve``'s uvicorn server, which drains live calls on SIGTERM.

uvicorn on its own answers SIGTERM by closing its listening socket and, after
``timeout_graceful_shutdown``, every websocket: a deploy would cut every live call. This
server takes SIGTERM itself: the process keeps listening, stops admitting calls (the
voice webhook redirects Twilio to the load balancer, ``/health/ready`` answers 503), lets
the live calls finish for up to ``DRAIN_TIMEOUT_S``, ends the rest with a spoken goodbye
(:func:`voicebot.call.registry.drain`), and only then runs uvicorn's own shutdown.
A second SIGTERM, or SIGINT, stops at once as uvicorn does.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType

import structlog
import uvicorn

from voicebot.call.registry import CallRegistry, drain

log = structlog.get_logger(__name__)

# uvicorn's own wait for connections once the calls have drained (HTTP keep-alives).
AFTER_DRAIN_GRACE_S = 5


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM drains ``registry`` before shutting down."""

    def __init__(
        self, config: uvicorn.Config, *, registry: CallRegistry, drain_timeout_s: float
    ) -> None:
        super().__init__(config)
        self._registry = registry
        self._drain_timeout_s = drain_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await super().serve(sockets)
        finally:
            if self._drain is not None and not self._drain.done():
                self._drain.cancel()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._drain is not None or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        log.info("serve.sigterm", live=self._registry.live, drain_timeout_s=self._drain_timeout_s)
        await drain(self._registry, timeout_s=self._drain_timeout_s)
        self.should_exit = True
