"""In-process turn-state store: bounded, with per-entry expiry (one process only)."""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from typing import Any

MEMORY_STORE_MAX_ENTRIES = 10_000


class MemoryStore:
    def __init__(self, *, max_entries: int = MEMORY_STORE_MAX_ENTRIES) -> None:
        self._data: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._max_entries = max_entries

    async def load(self, key: str) -> dict[str, Any] | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires_at, value = item
        if expires_at < time.monotonic():
            del self._data[key]
            return None
        return copy.deepcopy(value)

    async def save(self, key: str, value: dict[str, Any], *, ttl_s: int) -> None:
        self._data[key] = (time.monotonic() + ttl_s, copy.deepcopy(value))
        self._data.move_to_end(key)
        while len(self._data) > self._max_entries:
            self._data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def ping(self) -> None:
        return None

    def entry(self, key: str) -> tuple[dict[str, Any], int] | None:
        """The live value under ``key`` and its remaining TTL in whole seconds, or None."""
        item = self._data.get(key)
        if item is None:
            return None
        expires_at, value = item
        left_s = expires_at - time.monotonic()
        if left_s <= 0:
            return None
        return copy.deepcopy(value), int(left_s + 0.999)
