"""Time budgets for streamed provider calls: only time spent waiting on the provider counts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Budget:
    """Seconds left for one provider call, charged only while awaiting the provider.

    Time the consumer spends between chunks (playing audio, synthesising the previous
    sentence) is not charged, so a slow consumer never makes a healthy provider time out.
    Exhausting the budget raises :class:`TimeoutError`.
    """

    def __init__(self, total_s: float) -> None:
        self.remaining_s = total_s

    async def wait(self, awaitable: Awaitable[T], *, limit_s: float | None = None) -> T:
        """Await ``awaitable`` for at most the remaining budget (and ``limit_s`` if given)."""
        timeout_s = self.remaining_s if limit_s is None else min(limit_s, self.remaining_s)
        loop = asyncio.get_running_loop()
        started_s = loop.time()
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                return await awaitable
        finally:
            self.remaining_s -= loop.time() - started_s
