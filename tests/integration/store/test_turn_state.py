"""Turn state in Redis with TTL, and the degrade-to-memory path when Redis dies."""

from __future__ import annotations

import asyncio
import subprocess

import redis.asyncio as aioredis

from voicebot.store.memory import MemoryStore
from voicebot.store.redis import RedisStore
from voicebot.store.resilient import ResilientStore


async def test_redis_store_round_trip_with_ttl(redis_url: str) -> None:
    """A saved state is read back by another client and carries the TTL."""
    client = aioredis.from_url(redis_url)
    other = aioredis.from_url(redis_url)
    try:
        await RedisStore(client).save("CA1", {"stage": "pitch", "history": ["שלום"]}, ttl_s=30)
        assert await RedisStore(other).load("CA1") == {"stage": "pitch", "history": ["שלום"]}
        ttl = await client.ttl("voicebot:turn:CA1")
        assert 0 < ttl <= 30
    finally:
        await client.aclose()
        await other.aclose()


async def test_resilient_store_survives_redis_death(
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """When Redis dies, saves and loads go on in memory; the state written before is kept."""
    url, proc = own_redis
    client = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    store = ResilientStore(RedisStore(client), fallback=MemoryStore())
    await store.save("CA2", {"turn": 1}, ttl_s=60)
    assert await store.load("CA2") == {"turn": 1}
    proc.kill()
    proc.wait()
    await asyncio.sleep(0.05)
    await store.save("CA2", {"turn": 2}, ttl_s=60)
    assert store.degraded
    assert await store.load("CA2") == {"turn": 2}
    await client.aclose()


async def test_memory_store_expires_entries() -> None:
    """An entry past its TTL is gone."""
    store = MemoryStore()
    await store.save("k", {"a": 1}, ttl_s=0)
    await asyncio.sleep(0.01)
    assert await store.load("k") is None
