"""Readiness probes the broker for real; the API lists dead letters for every broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import dramatiq
import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import make_settings
from tests.integration.broker.conftest import delete_rabbit_queues, run_worker
from voicebot.api.health import READY_CHECK_TIMEOUT_S
from voicebot.app import create_app
from voicebot.cli import migrate
from voicebot.config import Settings
from voicebot.jobs.dead_letters import DeadLetter, dead_letter_store

API_KEY = "test-key-a2"


@pytest.fixture
async def ops_app(broker_settings: Settings, tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = make_settings(
        **{
            **broker_settings.model_dump(include={"redis_url", "broker_url"}),
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'ops.db'}",
            "api_key": API_KEY,
        }
    )
    migrate(settings)  # readiness includes the schema revision
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_ready_probes_the_broker(ops_app: Starlette) -> None:
    """/health/ready is 200 with the broker check ok on Stub, Redis and RabbitMQ for real."""
    async with _client(ops_app) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["broker"] == "ok"


@pytest.mark.parametrize(
    ("url", "kind"),
    [("amqp://guest:guest@127.0.0.1:1/%2F", "rabbitmq"), ("redis://127.0.0.1:1/0", "redis")],
)
async def test_ready_is_503_naming_the_broker_when_it_is_down(
    tmp_path: Path, url: str, kind: str
) -> None:
    """A BROKER_URL on a closed port: readiness 503, only `broker` failing, reason names it."""
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db", broker_url=url)
    migrate(settings)  # readiness includes the schema revision
    app = create_app(settings)
    async with app.router.lifespan_context(app), _client(app) as client:
        ready = await client.get("/health/ready")
        listing = await client.get("/api/v1/dead-letters")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["broker"]
    assert f"{kind}: " in ready.json()["checks"]["broker"]
    assert listing.status_code == 503
    assert listing.json()["error"]["code"] == "broker_unavailable"


async def test_dead_letters_are_listed_after_a_real_failure(
    ops_app: Starlette, broker_settings: Settings, test_name: str
) -> None:
    """An actor that fails for good shows in GET /api/v1/dead-letters (key required)."""
    broker: dramatiq.Broker = ops_app.state.voicebot.extras["broker"]
    actor_name = f"{test_name}_fails"

    def fails(campaign_id: int, reason: str) -> None:
        raise ValueError(f"campaign {campaign_id} cannot {reason}")

    actor = dramatiq.actor(
        broker=broker, queue_name=test_name, actor_name=actor_name, max_retries=0
    )(fails)
    url = f"/api/v1/dead-letters?actor={actor_name}"
    headers = {"X-API-Key": API_KEY}
    try:
        async with _client(ops_app) as client:
            assert (await client.get(url)).status_code == 401
            before = await client.get(url, headers=headers)
            assert before.status_code == 200 and before.json()["items"] == []
            actor.send(5, "dial")
            run_worker(broker, test_name, until=lambda: bool(dead_letters_of(broker, actor_name)))
            page = await client.get(url, headers=headers)
    finally:
        if broker_settings.broker_url is not None:
            delete_rabbit_queues(
                broker_settings.broker_url, test_name, f"{test_name}.DQ", f"{test_name}.XQ"
            )
    assert page.status_code == 200, page.text
    body = page.json()
    [item] = body["items"]
    assert body["total"] == 1
    assert item["actor"] == actor_name and item["args"] == [5, "dial"]
    assert item["error"] == "ValueError: campaign 5 cannot dial"
    assert item["failed_at"].endswith("+00:00") and item["retries"] == 0
    assert body["broker"] in ("stub", "redis", "rabbitmq")


def dead_letters_of(broker: dramatiq.Broker, actor: str) -> list[DeadLetter]:
    """What the broker's dead-letter store holds for ``actor``."""
    store = dead_letter_store(broker)
    assert store is not None
    return [letter for letter in store.newest(1000) if letter.actor == actor]


async def test_dead_letter_paging_is_validated(ops_app: Starlette) -> None:
    """A bad limit is a 422 in the one error shape, never a 500."""
    async with _client(ops_app) as client:
        bad = await client.get("/api/v1/dead-letters?limit=zero", headers={"X-API-Key": API_KEY})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "scheme", ["redis://127.0.0.1:{port}/0", "amqp://u:p@127.0.0.1:{port}/%2F"]
)
async def test_ready_is_503_promptly_when_the_broker_stalls(
    tmp_path: Path, black_hole: int, scheme: str
) -> None:
    """A broker that accepts and never answers: readiness answers 503 naming it, in time."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
        broker_url=scheme.format(port=black_hole),
    )
    migrate(settings)  # readiness includes the schema revision
    app = create_app(settings)
    async with app.router.lifespan_context(app), _client(app) as client:
        started = time.monotonic()
        ready = await client.get("/health/ready")
        elapsed_s = time.monotonic() - started
    assert ready.status_code == 503 and ready.json()["failing"] == ["broker"]
    assert elapsed_s < READY_CHECK_TIMEOUT_S + 2.0
