"""Request rate limits shared by every web instance through Redis (moving windows kept by
the ``limits`` library), in process memory when Redis is not configured or fails.

One :class:`RateLimits` per app. Each check names a limit (``N`` per minute) and the
identifiers it counts (``"addr", "203.0.113.9"``); the answer is the number of seconds to
wait, or None when the request may go on. A Redis failure or a command slower than
``REDIS_CALL_TIMEOUT_S`` falls back to this process's own counters (logged once per
outage) and Redis is not asked again for ``REDIS_RETRY_AFTER_S``, so a stalled Redis
costs a request at most one short timeout; limits then hold per instance, never open wide.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

log = structlog.get_logger(__name__)

KEY_PREFIX = "voicebot:rl"
MIN_RETRY_AFTER_S = 1
REDIS_CALL_TIMEOUT_S = 0.2
REDIS_RETRY_AFTER_S = 5.0


def per_minute(count: int) -> RateLimitItem:
    """``count`` requests in any 60 s."""
    return RateLimitItemPerMinute(count)


class RateLimits:
    """Moving-window limits over Redis (when given a client) with a memory fallback."""

    def __init__(self, *, redis: Any = None) -> None:
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if redis is not None:
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix=KEY_PREFIX,
                connection_pool=redis.connection_pool,
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._redis_down = False
        self._skip_redis_until = 0.0

    async def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one request; seconds to wait when it is over ``item``, else None."""
        limiter, allowed = await self._ask(lambda lim: lim.hit(item, *identifiers))
        return None if allowed else await self._retry_after(limiter, item, identifiers)

    async def blocked(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Without counting: seconds to wait when ``item`` is used up, else None."""
        limiter, allowed = await self._ask(lambda lim: lim.test(item, *identifiers))
        return None if allowed else await self._retry_after(limiter, item, identifiers)

    async def _ask(
        self, question: Callable[[MovingWindowRateLimiter], Awaitable[bool]]
    ) -> tuple[MovingWindowRateLimiter, bool]:
        """Ask the shared limiter when it is usable, else (or on failure) the local one."""
        shared = self._shared
        if shared is not None and time.monotonic() >= self._skip_redis_until:
            try:
                async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                    answer = await question(shared)
            except (StorageError, TimeoutError) as exc:
                self._fell_back(exc)
            else:
                if self._redis_down:
                    log.info("ratelimit.redis_recovered")
                self._redis_down = False
                return shared, answer
        return self._local, await question(self._local)

    def _fell_back(self, exc: Exception) -> None:
        self._skip_redis_until = time.monotonic() + REDIS_RETRY_AFTER_S
        if not self._redis_down:
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            log.warning("ratelimit.redis_unavailable", error=type(cause).__name__)
        self._redis_down = True

    async def _retry_after(
        self, limiter: MovingWindowRateLimiter, item: RateLimitItem, identifiers: tuple[str, ...]
    ) -> int:
        try:
            async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                stats = await limiter.get_window_stats(item, *identifiers)
        except (StorageError, TimeoutError):
            return item.get_expiry()
        return max(MIN_RETRY_AFTER_S, math.ceil(stats.reset_time - time.time()))
