"""Turn state in Redis with TTL, and the degrade-to-memory path when Redis dies."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

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


async def test_stalled_redis_costs_one_timeout_then_is_skipped_and_recovers(
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """A frozen Redis (SIGSTOP) costs the first command at most the call timeout; later
    commands skip it (no wait); after SIGCONT the probe writes the outage's keys back."""
    url, proc = own_redis
    client = aioredis.from_url(url)
    store = ResilientStore(RedisStore(client), call_timeout_s=0.2, retry_interval_s=0.05)
    await store.save("CA3", {"turn": 1}, ttl_s=60)
    await store.save("CA4", {"gone": True}, ttl_s=60)
    proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        await store.save("CA3", {"turn": 2}, ttl_s=60)
        first_s = time.monotonic() - started
        assert store.degraded
        started = time.monotonic()
        for turn in range(3, 13):
            await store.save("CA3", {"turn": turn}, ttl_s=60)
            assert await store.load("CA3") == {"turn": turn}
        await store.delete("CA4")
        skipped_s = time.monotonic() - started
        assert not await store.probe()  # still frozen: stays open
    finally:
        proc.send_signal(signal.SIGCONT)
    assert 0.15 <= first_s < 0.5
    assert skipped_s < 0.05
    assert store.skipped >= 21
    assert await store.probe()
    assert not store.degraded
    other = RedisStore(aioredis.from_url(url))
    assert await other.load("CA3") == {"turn": 12}
    assert await other.load("CA4") is None
    assert 0 < await client.ttl("voicebot:turn:CA3") <= 60
    await client.aclose()


async def test_watch_probes_a_dead_redis_in_the_background_until_it_returns(
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """With the watch task running, a breaker opened by a dead Redis closes by itself."""
    url, proc = own_redis
    client = aioredis.from_url(url)
    store = ResilientStore(RedisStore(client), call_timeout_s=0.2, retry_interval_s=0.05)
    watch = asyncio.create_task(store.watch())
    try:
        proc.send_signal(signal.SIGSTOP)
        await store.save("CA5", {"turn": 1}, ttl_s=60)
        assert store.degraded
        await asyncio.sleep(0.3)
        assert store.degraded
        proc.send_signal(signal.SIGCONT)
        async with asyncio.timeout(3):
            while store.degraded:  # noqa: ASYNC110 - the watch task owns the state
                await asyncio.sleep(0.02)
        assert await RedisStore(aioredis.from_url(url)).load("CA5") == {"turn": 1}
    finally:
        proc.send_signal(signal.SIGCONT)
        watch.cancel()
        await client.aclose()
