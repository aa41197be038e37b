"""The turn-state store Protocol: JSON-able dicts under a key, with a TTL."""

from __future__ import annotations

from typing import Any, Protocol


class TurnStateStore(Protocol):
    async def load(self, key: str) -> dict[str, Any] | None: ...

    async def save(self, key: str, value: dict[str, Any], *, ttl_s: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def ping(self) -> None:
        """Raise :class:`~voicebot.errors.StateStoreError` when the store cannot answer."""
        ...
