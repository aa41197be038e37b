"""Request rate limits shared by every web instance through Redis (moving windows kept by
the ``limits`` library), in process memory when Redis is not configured or fails.

One :class:`RateLimits` per app. Each check names a limit (``N`` per minute) and the
identifiers it counts (``"addr", "203.0.113.9"``); the answer is the number of seconds to
wait, or None when the request may go on. A Redis failure falls back to this process's
own counters (logged once per outage): limits then hold per instance, never open wide.
"""

from __future__ import annotations

import math
import time
from typing import Any

import structlog
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

log = structlog.get_logger(__name__)

KEY_PREFIX = "voicebot:rl"
MIN_RETRY_AFTER_S = 1


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

    async def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one request; seconds to wait when it is over ``item``, else None."""
        limiter = await self._limiter()
        try:
            allowed = await limiter.hit(item, *identifiers)
            self._redis_down = False
        except StorageError as exc:
            self._fell_back(exc)
            limiter = self._local
            allowed = await limiter.hit(item, *identifiers)
        return None if allowed else await self._retry_after(limiter, item, identifiers)

    async def blocked(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Without counting: seconds to wait when ``item`` is used up, else None."""
        limiter = await self._limiter()
        try:
            allowed = await limiter.test(item, *identifiers)
            self._redis_down = False
        except StorageError as exc:
            self._fell_back(exc)
            limiter = self._local
            allowed = await limiter.test(item, *identifiers)
        return None if allowed else await self._retry_after(limiter, item, identifiers)

    async def _limiter(self) -> MovingWindowRateLimiter:
        return self._shared if self._shared is not None else self._local

    def _fell_back(self, exc: StorageError) -> None:
        if not self._redis_down:
            log.warning("ratelimit.redis_unavailable", error=type(exc.storage_error).__name__)
        self._redis_down = True

    async def _retry_after(
        self, limiter: MovingWindowRateLimiter, item: RateLimitItem, identifiers: tuple[str, ...]
    ) -> int:
        try:
            stats = await limiter.get_window_stats(item, *identifiers)
        except StorageError:
            return item.get_expiry()
        return max(MIN_RETRY_AFTER_S, math.ceil(stats.reset_time - time.time()))
