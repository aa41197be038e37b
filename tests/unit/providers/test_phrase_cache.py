"""PhraseCache: single-flight, LRU bounds, disk persistence, warm-up, cheap hits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from voicebot.providers.phrase_cache import CACHE_FILE_SUFFIX, PhraseCache, _key


class CountingFactory:
    """Makes bytes for a text after a short await, counting calls."""

    def __init__(self, delay_s: float = 0.01) -> None:
        self.calls: list[str] = []
        self.delay_s = delay_s

    async def __call__(self, text: str) -> bytes:
        self.calls.append(text)
        await asyncio.sleep(self.delay_s)
        return text.encode() * 10


async def test_concurrent_requests_synthesise_once() -> None:
    """Ten simultaneous requests for one phrase run the factory once and share its bytes."""
    cache = PhraseCache()
    make = CountingFactory()
    results = await asyncio.gather(
        *(cache.get("v", "שלום", lambda: make("שלום")) for _ in range(10))
    )
    assert make.calls == ["שלום"]
    assert len(set(results)) == 1 and cache.misses == 1 and cache.hits == 0


async def test_lru_evicts_the_least_recently_used_entry() -> None:
    """Past max_entries, the entry used longest ago goes first."""
    cache = PhraseCache(max_entries=2)
    make = CountingFactory(0)
    for text in ("a", "b"):
        await cache.get("v", text, lambda t=text: make(t))  # type: ignore[misc]
    await cache.get("v", "a", lambda: make("a"))
    await cache.get("v", "c", lambda: make("c"))
    assert cache.peek("v", "a") is not None
    assert cache.peek("v", "b") is None
    assert len(cache) == 2


async def test_byte_bound_is_respected() -> None:
    """Total cached bytes never exceed max_bytes; oversize entries are served but not kept."""
    cache = PhraseCache(max_bytes=25)
    for text in ("aa", "bb", "cc"):
        await cache.get("v", text, lambda t=text: CountingFactory(0)(t))  # type: ignore[misc]
    assert cache.total_bytes <= 25
    big = await cache.get("v", "x" * 10, lambda: CountingFactory(0)("x" * 10))
    assert len(big) == 100 and cache.peek("v", "x" * 10) is None


async def test_disk_persistence_survives_a_restart(tmp_path: Path) -> None:
    """A second cache on the same directory serves the phrase without the factory."""
    first = PhraseCache(directory=tmp_path)
    data = await first.get("voice-1", "בוקר טוב", lambda: CountingFactory(0)("בוקר טוב"))
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 1 and "בוקר" not in files[0] and not files[0].startswith(".tmp")
    second = PhraseCache(directory=tmp_path)
    make = CountingFactory(0)
    assert await second.get("voice-1", "בוקר טוב", lambda: make("בוקר טוב")) == data
    assert make.calls == [] and second.disk_hits == 1


async def test_voices_do_not_share_entries() -> None:
    """The same text in two voices is two entries."""
    cache = PhraseCache()
    make = CountingFactory(0)
    await cache.get("v1", "שלום", lambda: make("שלום"))
    await cache.get("v2", "שלום", lambda: make("שלום"))
    assert len(make.calls) == 2


async def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    """A failing factory fails all concurrent waiters once; the next request tries again."""
    cache = PhraseCache()
    calls = 0

    async def failing() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("tts down")

    results = await asyncio.gather(
        *(cache.get("v", "x", failing) for _ in range(3)), return_exceptions=True
    )
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get("v", "x", lambda: CountingFactory(0)("x")) == b"x" * 10


async def test_waiter_takes_over_when_the_leader_is_cancelled() -> None:
    """If the caller running the factory is cancelled (barge-in), a waiter still gets audio."""
    cache = PhraseCache()
    make = CountingFactory(0.05)
    leader = asyncio.create_task(cache.get("v", "שלום", lambda: make("שלום")))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(cache.get("v", "שלום", lambda: make("שלום")))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await waiter == "שלום".encode() * 10
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert len(make.calls) == 2


async def test_warm_fills_the_cache_once_per_distinct_text() -> None:
    """warm() synthesises each distinct text once and later gets are hits."""
    cache = PhraseCache()
    make = CountingFactory(0)
    assert await cache.warm("v", ["שלום", "תודה", "שלום"], make) == 2
    assert sorted(make.calls) == sorted(["שלום", "תודה"])
    await cache.get("v", "תודה", lambda: make("תודה"))
    assert cache.hits == 1


async def test_a_hit_completes_without_suspending() -> None:
    """A memory hit returns on the first step of the coroutine: no await, no I/O."""
    cache = PhraseCache()
    await cache.get("v", "שלום", lambda: CountingFactory(0)("שלום"))
    coroutine = cache.get("v", "שלום", lambda: CountingFactory(0)("שלום"))
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value == "שלום".encode() * 10


async def test_remembered_audio_is_served_within_the_bounds(tmp_path: Path) -> None:
    """Audio synthesized elsewhere is kept in memory (not on disk), under the same LRU bound."""
    cache = PhraseCache(max_entries=2, directory=tmp_path)
    for text in ("אחת", "שתיים", "שלוש"):
        cache.remember("v", text, text.encode() * 4)
    assert cache.peek("v", "אחת") is None
    assert cache.peek("v", "שלוש") == "שלוש".encode() * 4
    assert len(cache) == 2 and not os.listdir(tmp_path)


async def test_lookup_finds_a_phrase_another_process_made_on_disk(tmp_path: Path) -> None:
    """A phrase one process synthesized is found by another's lookup, without synthesis."""
    maker, other = PhraseCache(directory=tmp_path), PhraseCache(directory=tmp_path)
    await maker.get("v", "שלום", lambda: CountingFactory(0)("שלום"))
    assert other.peek("v", "שלום") is None
    assert await other.lookup("v", "שלום") == "שלום".encode() * 10
    assert other.disk_hits == 1 and other.misses == 0
    assert other.peek("v", "שלום") is not None  # kept in memory after
    assert await other.lookup("v", "לא נאמר") is None


async def test_a_disk_miss_completes_without_suspending(tmp_path: Path) -> None:
    """A phrase no process made (most of a model's sentences) is a miss after one stat of
    its file: no thread hop per sentence (it was ~2 % of a loaded server's CPU)."""
    cache = PhraseCache(directory=tmp_path)
    coroutine = cache.lookup("v", "משפט שאף אחד לא אמר")
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)
    assert done.value.value is None


async def test_disk_cache_keeps_to_its_byte_limit_least_recently_used_out(
    tmp_path: Path,
) -> None:
    """Past max_disk_bytes the files used longest ago are deleted; a file just read stays."""
    cache = PhraseCache(directory=tmp_path, max_disk_bytes=800)
    texts = [f"{n}" * 30 for n in range(3)]  # 300 bytes of audio each
    for n, text in enumerate(texts[:2]):
        await cache.get("v", text, lambda t=text: CountingFactory(0)(t))  # type: ignore[misc]
        os.utime(tmp_path / (_key("v", text) + CACHE_FILE_SUFFIX), (n + 1, n + 1))
    reader = PhraseCache(directory=tmp_path)
    assert await reader.lookup("v", texts[0]) is not None  # a read: now the newest
    await cache.get("v", texts[2], lambda: CountingFactory(0)(texts[2]))
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 800  # noqa: ASYNC240 - tmp dir
    fresh = PhraseCache(directory=tmp_path)
    assert await fresh.lookup("v", texts[0]) is not None
    assert await fresh.lookup("v", texts[1]) is None
    assert await fresh.lookup("v", texts[2]) is not None
