"""A store that prefers Redis and degrades to in-process memory when Redis fails or stalls.

Every write lands in memory too, so a call that loses Redis mid-way keeps its state.
Each Redis command is bounded by ``call_timeout_s`` (the call path never waits longer on
Redis than that). The first failure opens a circuit breaker: from then on Redis is not
asked at all (no command pays the timeout again) and a background probe (:meth:`watch`,
run by the app lifespan) pings it every ``retry_interval_s``. When the ping answers, the
keys written or deleted during the outage are written back from memory, then the breaker
closes, so Redis never serves state older than this process's. The outage is logged
once, and the recovery once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from voicebot.errors import StateStoreError
from voicebot.store.base import TurnStateStore
from voicebot.store.memory import MemoryStore

log = structlog.get_logger(__name__)

# How long a call-path Redis command may take before Redis counts as failed.
DEFAULT_CALL_TIMEOUT_S = 0.2
# How often the background probe pings a failed Redis.
DEFAULT_RETRY_INTERVAL_S = 1.0


class ResilientStore:
    """Redis first with a per-command timeout and a circuit breaker; memory always."""

    def __init__(
        self,
        primary: TurnStateStore | None,
        *,
        fallback: MemoryStore | None = None,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
    ) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryStore()
        self._call_timeout_s = call_timeout_s
        self._retry_interval_s = retry_interval_s
        self._open = asyncio.Event()  # set while the breaker is open (Redis skipped)
        self._dirty: set[str] = set()  # keys changed while Redis was skipped
        self.opened_at: float | None = None
        self.last_error: str | None = None
        self.skipped = 0  # commands that did not go to Redis because the breaker was open

    @property
    def degraded(self) -> bool:
        """True while the breaker is open: Redis is skipped and state lives in memory."""
        return self._open.is_set()

    def _use_primary(self) -> TurnStateStore | None:
        if self._primary is None:
            return None
        if self._open.is_set():
            self.skipped += 1
            return None
        return self._primary

    def _fail(self, error: str) -> None:
        self.last_error = error
        if not self._open.is_set():
            log.warning("state_store.degraded", error=error, fallback="memory")
            self.opened_at = time.monotonic()
            self._open.set()

    async def _bounded(self, coro: Any) -> Any:
        """Await one Redis command within the call timeout; StateStoreError on any failure."""
        try:
            async with asyncio.timeout(self._call_timeout_s):
                return await coro
        except TimeoutError as exc:
            raise StateStoreError(f"redis timed out after {self._call_timeout_s:g} s") from exc

    async def load(self, key: str) -> dict[str, Any] | None:
        primary = self._use_primary()
        if primary is not None:
            try:
                value: dict[str, Any] | None = await self._bounded(primary.load(key))
            except StateStoreError as exc:
                self._fail(exc.message)
            else:
                if value is not None:
                    return value
        return await self._fallback.load(key)

    async def save(self, key: str, value: dict[str, Any], *, ttl_s: int) -> None:
        await self._fallback.save(key, value, ttl_s=ttl_s)
        primary = self._use_primary()
        if primary is None:
            self._dirty.add(key)
            return
        try:
            await self._bounded(primary.save(key, value, ttl_s=ttl_s))
        except StateStoreError as exc:
            self._dirty.add(key)
            self._fail(exc.message)

    async def delete(self, key: str) -> None:
        await self._fallback.delete(key)
        primary = self._use_primary()
        if primary is None:
            self._dirty.add(key)
            return
        try:
            await self._bounded(primary.delete(key))
        except StateStoreError as exc:
            self._dirty.add(key)
            self._fail(exc.message)

    async def probe(self) -> bool:
        """Ping Redis once; when it answers, write back the outage's keys and close the
        breaker. True when Redis is in use afterwards."""
        if self._primary is None:
            return False
        if not self._open.is_set():
            return True
        try:
            await self._bounded(self._primary.ping())
            await self._write_back(self._primary)
        except StateStoreError as exc:
            self.last_error = exc.message
            return False
        log.info(
            "state_store.recovered",
            outage_s=round(time.monotonic() - (self.opened_at or time.monotonic()), 1),
            skipped=self.skipped,
        )
        self._open.clear()
        self.opened_at = None
        return True

    async def _write_back(self, primary: TurnStateStore) -> None:
        while self._dirty:
            key = next(iter(self._dirty))
            entry = self._fallback.entry(key)
            if entry is None:
                await self._bounded(primary.delete(key))
            else:
                value, ttl_s = entry
                await self._bounded(primary.save(key, value, ttl_s=max(1, ttl_s)))
            self._dirty.discard(key)

    async def watch(self) -> None:
        """Run for the process's life: while the breaker is open, probe Redis every
        ``retry_interval_s``. Cancel it to stop."""
        if self._primary is None:
            return
        while True:
            await self._open.wait()
            await asyncio.sleep(self._retry_interval_s)
            await self.probe()
