"""Event-loop lag: how late the loop wakes a task that asked to sleep a fixed interval.

Every live call shares one event loop, so a stall anywhere (a blocking call, a long
garbage collection, the GIL held by a thread) delays every call's audio. The monitor
makes such stalls visible as a histogram and as the worst stall seen.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Gauge, Histogram

LOOP_LAG_INTERVAL_S = 0.05  # how often the loop is probed
LOOP_LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


async def watch_loop_lag(
    histogram: Histogram, worst: Gauge, *, interval_s: float = LOOP_LAG_INTERVAL_S
) -> None:
    """Probe the running loop forever (cancel to stop); observe each wake-up's lateness."""
    loop = asyncio.get_running_loop()
    worst_s = 0.0
    while True:
        asked_at = loop.time()
        await asyncio.sleep(interval_s)
        lag_s = max(0.0, loop.time() - asked_at - interval_s)
        histogram.observe(lag_s)
        if lag_s > worst_s:
            worst_s = lag_s
            worst.set(lag_s)


FULL_COLLECTION_SPACING = 100
"""Young (generation 1) collections between two full ones, at least; CPython's default
is 10. A full collection walks every live call's objects and stops all of them (50–70 ms
at 200 calls on a slow VM); with the default it ran whenever the heap grew by a quarter,
so three times while 200 calls ramped up in 20 s, each landing on the greetings being
played then. An ended call leaves ~400 objects in cycles for a full collection to free;
its audio buffers are let go when it ends (:meth:`CallSession._release`: ~64 KB per
one-turn call, measured with ``gc.DEBUG_SAVEALL``), so what waits is a few KB per call.
At 200 calls a full collection now comes every ~2–3 minutes (~950 ended calls)."""


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, the OpenAI and SQLAlchemy type
    machinery, settings) out of the collector's reach: a full collection then walks only
    what calls create, and stops all calls for milliseconds instead of ~120 ms. Full
    collections are spaced out (:data:`FULL_COLLECTION_SPACING`)."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_SPACING)


def watch_gc_pauses(histogram: Histogram) -> Callable[[], None]:
    """Observe every garbage collection's pause (it stops all calls); returns the undo."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            histogram.labels(str(info.get("generation", "?"))).observe(
                time.perf_counter() - started.pop()
            )

    gc.callbacks.append(callback)
    return lambda: gc.callbacks.remove(callback)
