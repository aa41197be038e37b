"""Turn state in Redis with TTL, and the degrade-to-memory path when Redis dies."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from tests.conftest import service_unavailable
from voicebot.store.memory import MemoryStore
from voicebot.store.redis import RedisStore
from voicebot.store.resilient import ResilientStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throw-away redis-server of our own, so the test may kill it."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server binary", FileNotFoundError("redis-server"))
        raise AssertionError("unreachable")
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed arguments, our own binary
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(50):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        import time

        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


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
    private_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """When Redis dies, saves and loads go on in memory; the state written before is kept."""
    url, proc = private_redis
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
