"""Where ``POST /conversation`` keeps each conversation between requests, in bounded space.

A conversation is kept as JSON under its id for ``TURN_STATE_TTL_S``: in Redis when it is
configured and answering (shared by every instance), else in this process's memory. Both
are bounded in bytes: a conversation over ``CONVERSATION_MAX_BYTES`` loses its oldest
turns until it fits (the brain keeps the recent context), and the in-process copies
together never exceed ``CONVERSATION_MEMORY_MAX_BYTES`` (least recently used evicted
first, expired ones dropped). The API has no auth in the default configuration, so
nothing a client sends may grow memory without bound.

A Redis failure is logged once per outage; the conversation then lives in memory (and
may be lost with this process, which is the degradation a text chat can take).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from typing import Any

import structlog

from voicebot.errors import StateStoreError
from voicebot.store.base import TurnStateStore

log = structlog.get_logger(__name__)

KEY_PREFIX = "conversation:"
REDIS_CALL_TIMEOUT_S = 0.2
ENTRY_OVERHEAD_BYTES = 200
"""Accounted per in-memory entry beyond its JSON (key, tuple, dict slot)."""
MIN_KEPT_TURNS = 2


def encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def fit_history(value: dict[str, Any], max_bytes: int) -> bytes:
    """``value`` (a ``ConversationState.to_dict()``) as JSON of at most ``max_bytes``,
    dropping the oldest history turns first; never fewer than ``MIN_KEPT_TURNS``."""
    data = encode(value)
    history = list(value.get("history") or [])
    if len(data) <= max_bytes or not history:
        return data
    sizes = [len(encode(turn)) + 1 for turn in history]
    excess = len(data) - max_bytes
    drop = 0
    while excess > 0 and len(history) - drop > MIN_KEPT_TURNS:
        excess -= sizes[drop]
        drop += 1
    return encode({**value, "history": history[drop:]})


class ConversationMemory:
    """In-process JSON values under a total byte budget, LRU-evicted, with per-entry TTL."""

    def __init__(self, *, max_total_bytes: int) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max_total_bytes = max_total_bytes
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def load(self, key: str, *, now_s: float) -> dict[str, Any] | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires_at, data = item
        if expires_at <= now_s:
            self.delete(key)
            return None
        self._entries.move_to_end(key)
        value: dict[str, Any] = json.loads(data)
        return value

    def save(self, key: str, data: bytes, *, ttl_s: int, now_s: float) -> None:
        self.delete(key)
        size = len(data) + ENTRY_OVERHEAD_BYTES
        if size > self._max_total_bytes:
            return
        self._entries[key] = (now_s + ttl_s, data)
        self.total_bytes += size
        self._evict(now_s)

    def delete(self, key: str) -> None:
        item = self._entries.pop(key, None)
        if item is not None:
            self.total_bytes -= len(item[1]) + ENTRY_OVERHEAD_BYTES

    def _evict(self, now_s: float) -> None:
        # One TTL for all: the least recently used entries are the first to expire.
        while self._entries and next(iter(self._entries.values()))[0] <= now_s:
            self.delete(next(iter(self._entries)))
        while self.total_bytes > self._max_total_bytes and self._entries:
            oldest = next(iter(self._entries))
            self.delete(oldest)


class ConversationStore:
    """Redis when given one and answering, else bounded memory; see the module docstring."""

    def __init__(
        self,
        *,
        redis: TurnStateStore | None,
        ttl_s: int,
        max_conversation_bytes: int,
        max_memory_bytes: int,
    ) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._max_conversation_bytes = max_conversation_bytes
        self.memory = ConversationMemory(max_total_bytes=max_memory_bytes)
        self._redis_down = False

    async def load(self, conversation_id: str) -> dict[str, Any] | None:
        key = KEY_PREFIX + conversation_id
        if self._redis is not None:
            try:
                async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                    value = await self._redis.load(key)
            except (StateStoreError, TimeoutError) as exc:
                self._failed(exc)
            else:
                self._redis_down = False
                if value is not None:
                    return value
        return self.memory.load(key, now_s=time.monotonic())

    async def save(self, conversation_id: str, value: dict[str, Any]) -> dict[str, Any]:
        """Keep ``value`` (trimmed to the per-conversation bound); returns what was kept."""
        key = KEY_PREFIX + conversation_id
        data = fit_history(value, self._max_conversation_bytes)
        kept: dict[str, Any] = json.loads(data)
        if self._redis is not None:
            try:
                async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
                    await self._redis.save(key, kept, ttl_s=self._ttl_s)
            except (StateStoreError, TimeoutError) as exc:
                self._failed(exc)
            else:
                self._redis_down = False
                self.memory.delete(key)
                return kept
        self.memory.save(key, data, ttl_s=self._ttl_s, now_s=time.monotonic())
        return kept

    def _failed(self, exc: Exception) -> None:
        if not self._redis_down:
            log.warning("conversation.store_degraded", error=type(exc).__name__, fallback="memory")
        self._redis_down = True
