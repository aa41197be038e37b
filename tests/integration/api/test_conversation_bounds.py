"""The text conversation store is bounded in bytes (per conversation and in total) with a
TTL, in memory and in Redis: large histories cannot grow the process for good."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import make_settings
from voicebot.api.conversation import conversation_store
from voicebot.app import create_app

TURN_TEXT = "שלום " * 800  # 4,000 characters, 8,000 bytes of UTF-8
BIG_HISTORY = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": TURN_TEXT} for i in range(100)
]  # about 800 kB of JSON, the most one request may carry


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _converse(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/conversation", json={"message": "כן", **body})
    assert response.status_code == 200, response.text[:300]
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.slow
async def test_150_big_histories_do_not_stay_in_memory(database_url: str) -> None:
    """150 requests with 800 kB histories keep about 150 x CONVERSATION_MAX_BYTES, not the
    ~235 MiB they used to keep for good."""
    app = create_app(make_settings(database_url=database_url))
    async with app.router.lifespan_context(app), _client(app) as client:
        await _converse(client)  # warm up imports and caches before measuring
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(150):
                await _converse(client, history=BIG_HISTORY)
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        store = conversation_store(app.state.voicebot)
        settings = app.state.voicebot.settings
        assert len(store.memory) == 151
        assert store.memory.total_bytes <= 151 * (settings.conversation_max_bytes + 200)
    assert retained < 30 * 1024 * 1024, f"retained {retained / 2**20:.1f} MiB"


async def test_a_big_conversation_keeps_its_latest_turns(database_url: str) -> None:
    """Past CONVERSATION_MAX_BYTES the oldest turns go; the latest exchange stays and the
    conversation continues from the store."""
    app = create_app(make_settings(database_url=database_url, conversation_max_bytes=20_000))
    async with app.router.lifespan_context(app), _client(app) as client:
        first = await _converse(client, history=BIG_HISTORY)
        assert len(first["history"]) < len(BIG_HISTORY)
        assert first["history"][-2] == {"role": "user", "content": "כן"}
        assert first["history"][-1]["content"] == first["reply"]
        again = await _converse(client, conversation_id=first["conversation_id"])
        assert again["history"][-2] == {"role": "user", "content": "כן"}
        assert first["history"][-1] in again["history"]


async def test_total_memory_is_capped_least_recently_used_first(database_url: str) -> None:
    """With a 1 MiB total cap, many conversations evict the least recently used."""
    app = create_app(
        make_settings(
            database_url=database_url,
            conversation_max_bytes=65_536,
            conversation_memory_max_bytes=1_048_576,
        )
    )
    async with app.router.lifespan_context(app), _client(app) as client:
        ids = [
            (await _converse(client, history=BIG_HISTORY[:8]))["conversation_id"] for _ in range(40)
        ]
        store = conversation_store(app.state.voicebot)
        assert store.memory.total_bytes <= 1_048_576
        assert 0 < len(store.memory) < 40
        assert await store.load(ids[-1]) is not None
        assert await store.load(ids[0]) is None


async def test_with_redis_conversations_live_in_redis_bounded_with_ttl(
    database_url: str, redis_url: str
) -> None:
    """With Redis, the conversation is in Redis (capped bytes, TTL), not in process memory."""
    import redis.asyncio as aioredis

    settings = make_settings(database_url=database_url, redis_url=redis_url, turn_state_ttl_s=600)
    app = create_app(settings)
    async with app.router.lifespan_context(app), _client(app) as client:
        body = await _converse(client, history=BIG_HISTORY)
        store = conversation_store(app.state.voicebot)
        assert len(store.memory) == 0
    conn = aioredis.from_url(redis_url)
    try:
        key = f"voicebot:turn:conversation:{body['conversation_id']}"
        assert 0 < await conn.strlen(key) <= settings.conversation_max_bytes
        assert 0 < await conn.ttl(key) <= 600
    finally:
        await conn.aclose()
