"""Phrase audio in Redis, shared by every web process (:class:`SharedPhrases`).

Each command is bounded by the call-path Redis timeout; a failure or stall is logged once
and Redis is skipped for ``retry_interval_s``, so a quiet Redis costs one call at most
one timeout. Entries expire after ``ttl_s`` (the disk cache keeps them longer).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

KEY_PREFIX = "voicebot:phrase:"
DEFAULT_TTL_S = 7 * 24 * 3600


class RedisPhrases:
    """Bytes under ``voicebot:phrase:<sha256>``; misses and failures read as None."""

    def __init__(
        self,
        client: Redis,
        *,
        call_timeout_s: float,
        retry_interval_s: float,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> None:
        self._client = client
        self._call_timeout_s = call_timeout_s
        self._retry_interval_s = retry_interval_s
        self._ttl_s = ttl_s
        self._skip_until = 0.0
        self.failures = 0

    async def get(self, key: str) -> bytes | None:
        if time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(self._call_timeout_s):
                data = await self._client.get(KEY_PREFIX + key)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return None
        return data if isinstance(data, bytes) else None

    async def put(self, key: str, data: bytes) -> None:
        if time.monotonic() < self._skip_until:
            return
        try:
            async with asyncio.timeout(self._call_timeout_s):
                await self._client.set(KEY_PREFIX + key, data, ex=self._ttl_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self._skip_until == 0.0 or time.monotonic() >= self._skip_until:
            log.warning(
                "phrase_store.skipped",
                error=type(exc).__name__,
                retry_in_s=self._retry_interval_s,
            )
        self._skip_until = time.monotonic() + self._retry_interval_s
