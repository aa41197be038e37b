"""Nudges sent to the broker from a thread of their own, never from the event loop.

A nudge (:func:`~voicebot.jobs.actors.build_jobs`' ``nudge_campaign`` message) is only
a hint: the sweepers' period is what makes campaigns dial. Dramatiq's brokers send
through blocking clients (redis-py, pika), and a broker that accepts connections and
never answers holds a send for its socket timeouts
(:data:`~voicebot.jobs.broker.BROKER_SOCKET_TIMEOUT_S`). Sent from a request handler,
that would stall the event loop, and with it every live call, for that long.

:class:`Nudger` takes the send off the loop: :meth:`Nudger.nudge` returns at once and
never raises; one daemon thread sends, one message at a time. Nudges that arrive while
a send is in flight are coalesced into one more send (the actor wakes every sweeper,
whichever campaign it names), so a stalled broker holds at most one thread and one
waiting nudge, never a growing queue. A send that fails or times out is logged and
dropped: the next sweep comes anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

NUDGE_THREAD_NAME = "broker-nudge"


class Nudger:
    """Send ``send(campaign_id)`` on a background thread; see the module docstring."""

    def __init__(self, send: Callable[[int], object]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._waiting: int | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.sent = 0
        """Sends that returned (for tests and metrics)."""
        self.failed = 0
        """Sends that raised (the broker refused, stalled past its timeout, …)."""

    @property
    def in_flight(self) -> bool:
        """True while the sender thread is sending or has a nudge waiting."""
        with self._lock:
            return self._thread is not None

    def nudge(self, campaign_id: int) -> None:
        """Queue a nudge naming ``campaign_id``; returns at once, never raises.

        A nudge after :meth:`close` is dropped.
        """
        with self._lock:
            if self._closed:
                return
            self._waiting = campaign_id
            if self._thread is not None:
                return  # the running sender picks it up after its current send
            self._thread = threading.Thread(target=self._drain, name=NUDGE_THREAD_NAME, daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Drop any waiting nudge and send no more. Does not wait for a send in flight
        (it is bounded by the broker's socket timeouts and runs on a daemon thread)."""
        with self._lock:
            self._closed = True
            self._waiting = None

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the sender to go idle; True when it is."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def _drain(self) -> None:
        while True:
            with self._lock:
                campaign_id, self._waiting = self._waiting, None
                if campaign_id is None or self._closed:
                    self._thread = None
                    return
            try:
                self._send(campaign_id)
            # Any broker failure (redis-py, pika, Dramatiq errors): a nudge is only a
            # hint, and this thread is the edge that can drop it.
            except Exception as exc:
                self.failed += 1
                log.warning(
                    "campaign.nudge_failed",
                    campaign_id=campaign_id,
                    error=f"{type(exc).__name__}: {exc}"[:200],
                )
            else:
                self.sent += 1
