"""``voicebot serve``'s uvicorn server, which drains live calls on SIGTERM.

uvicorn on its own answers SIGTERM by closing its listening socket and, after
``timeout_graceful_shutdown``, every websocket: a deploy would cut every live call. This
server takes SIGTERM itself: the process keeps listening, stops admitting calls (the
voice webhook redirects Twilio to the load balancer, ``/health/ready`` answers 503), lets
the live calls finish for up to ``DRAIN_TIMEOUT_S``, ends the rest with a spoken goodbye
(:func:`voicebot.call.registry.drain`), and only then runs uvicorn's own shutdown.
A second SIGTERM, or SIGINT, stops at once as uvicorn does.

``serve --workers N`` runs uvicorn's supervisor, which forwards SIGTERM to each worker
and waits for them all; :func:`run_workers` makes every worker a :class:`DrainingServer`
(each finds its own app's registry once it has loaded the app), so each drains its own
calls as a single process does.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from types import FrameType
from typing import Any

import structlog
import uvicorn
from uvicorn.supervisors import multiprocess

from voicebot.call.registry import CallRegistry, drain

log = structlog.get_logger(__name__)

# uvicorn's own wait for connections once the calls have drained (HTTP keep-alives).
AFTER_DRAIN_GRACE_S = 5


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM drains ``registry`` before shutting down.

    Without ``registry`` (a worker that builds its app from a factory) the registry and
    the drain timeout are the loaded app's (``app.state``)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        registry: CallRegistry | None = None,
        drain_timeout_s: float | None = None,
    ) -> None:
        super().__init__(config)
        self._registry = registry
        self._drain_timeout_s = drain_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        if self._registry is None:
            if not self.config.loaded:
                self.config.load()
            state = _app_state(self.config.loaded_app)
            self._registry = state.call_registry
            if self._drain_timeout_s is None:
                self._drain_timeout_s = float(state.drain_timeout_s)
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
        registry, timeout_s = self._registry, self._drain_timeout_s
        if registry is not None and timeout_s is not None:
            log.info("serve.sigterm", live=registry.live, drain_timeout_s=timeout_s)
            await drain(registry, timeout_s=timeout_s)
        self.should_exit = True


class DrainingWorker(multiprocess.Process):
    """One worker process of ``serve --workers N``: it serves with a DrainingServer."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


def run_workers(config: uvicorn.Config) -> None:
    """uvicorn's supervisor with ``config.workers`` draining workers; returns once every
    worker has exited (SIGTERM: each drains its calls first).

    uvicorn makes its workers in ``multiprocess.Process``, with no hook for the server
    class: the name is pointed at :class:`DrainingWorker` while the supervisor runs (in
    this, the supervisor process, only; workers are spawned, not forked).
    """
    sock = config.bind_socket()
    original = multiprocess.Process
    multiprocess.Process = DrainingWorker  # type: ignore[misc]
    try:
        multiprocess.Multiprocess(config, sockets=[sock]).run()
    finally:
        multiprocess.Process = original  # type: ignore[misc]
        sock.close()


def _app_state(app: Any) -> Any:
    """The Starlette app's ``state`` under uvicorn's wrapping middleware."""
    while app is not None:
        state = getattr(app, "state", None)
        if state is not None and hasattr(state, "call_registry"):
            return state
        app = getattr(app, "app", None)
    raise RuntimeError("the served app has no call registry (not voicebot.app:create_app?)")
