"""A store that prefers Redis and degrades to in-process memory when Redis fails.

Writes always land in memory too, so a call that loses Redis mid-way keeps its
state; the outage is logged once, and recovery once.
"""

from __future__ import annotations

from typing import Any

import structlog

from voicebot.errors import StateStoreError
from voicebot.store.base import TurnStateStore
from voicebot.store.memory import MemoryStore

log = structlog.get_logger(__name__)


class ResilientStore:
    def __init__(
        self, primary: TurnStateStore | None, *, fallback: MemoryStore | None = None
    ) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryStore()
        self.degraded = False

    def _fail(self, exc: StateStoreError) -> None:
        if not self.degraded:
            log.warning("state_store.degraded", error=exc.message, fallback="memory")
        self.degraded = True

    def _ok(self) -> None:
        if self.degraded:
            log.info("state_store.recovered")
        self.degraded = False

    async def load(self, key: str) -> dict[str, Any] | None:
        if self._primary is not None:
            try:
                value = await self._primary.load(key)
            except StateStoreError as exc:
                self._fail(exc)
            else:
                self._ok()
                if value is not None:
                    return value
        return await self._fallback.load(key)

    async def save(self, key: str, value: dict[str, Any], *, ttl_s: int) -> None:
        await self._fallback.save(key, value, ttl_s=ttl_s)
        if self._primary is not None:
            try:
                await self._primary.save(key, value, ttl_s=ttl_s)
            except StateStoreError as exc:
                self._fail(exc)
            else:
                self._ok()

    async def delete(self, key: str) -> None:
        await self._fallback.delete(key)
        if self._primary is not None:
            try:
                await self._primary.delete(key)
            except StateStoreError as exc:
                self._fail(exc)
