"""Redis turn-state store: one JSON value per call key, with a TTL."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from voicebot.errors import StateStoreError

KEY_PREFIX = "voicebot:turn:"


class RedisStore:
    def __init__(self, client: Redis) -> None:
        self._client = client

    async def load(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._client.get(KEY_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis load failed: {type(exc).__name__}") from exc
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def save(self, key: str, value: dict[str, Any], *, ttl_s: int) -> None:
        payload = json.dumps(value, ensure_ascii=False, default=str)
        try:
            await self._client.set(KEY_PREFIX + key, payload, ex=ttl_s)
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis save failed: {type(exc).__name__}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self._client.delete(KEY_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis delete failed: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis ping failed: {type(exc).__name__}") from exc
