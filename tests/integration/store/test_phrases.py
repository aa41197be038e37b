"""Phrase audio shared through Redis: found by another process's cache; a stalled Redis
costs one bounded wait, then is skipped."""

from __future__ import annotations

import signal
import subprocess
import time

import redis.asyncio as aioredis

from voicebot.providers.phrase_cache import PhraseCache
from voicebot.store.phrases import RedisPhrases


async def _made(text: str) -> bytes:
    return text.encode() * 100


async def test_a_phrase_made_by_one_process_is_found_by_another_through_redis(
    redis_url: str,
) -> None:
    """Two caches with no shared directory: the second finds the first's phrase in Redis."""
    first, second = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        maker = PhraseCache(shared=RedisPhrases(first, call_timeout_s=0.2, retry_interval_s=1))
        other = PhraseCache(shared=RedisPhrases(second, call_timeout_s=0.2, retry_interval_s=1))
        made = await maker.get("v", "שלום, מדברת נועה", lambda: _made("שלום, מדברת נועה"))
        assert await other.lookup("v", "שלום, מדברת נועה") == made
        assert other.shared_hits == 1 and other.misses == 0
        assert await other.lookup("v", "משהו אחר") is None
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_stalled_redis_costs_one_timeout_then_is_skipped(
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """With Redis frozen, the first lookup gives up after the call timeout; the next ones
    skip Redis (no wait) until the retry interval has passed."""
    url, proc = own_redis
    client = aioredis.from_url(url)
    shared = RedisPhrases(client, call_timeout_s=0.2, retry_interval_s=30)
    cache = PhraseCache(shared=shared)
    await cache.get("v", "a", lambda: _made("a"))  # connects while Redis answers
    proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert await cache.lookup("v", "b") is None
        first_s = time.monotonic() - started
        started = time.monotonic()
        for text in ("c", "d", "e"):
            assert await cache.lookup("v", text) is None
        skipped_s = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGCONT)
        await client.aclose()
    assert 0.15 <= first_s < 0.5
    assert skipped_s < 0.05
    assert shared.failures == 1
