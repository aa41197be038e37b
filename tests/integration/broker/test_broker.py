"""The broker chosen by BROKER_URL carries real messages: sent, consumed, and dead-lettered."""

from __future__ import annotations

import time

import dramatiq
import pytest

from tests.conftest import make_settings
from tests.integration.broker.conftest import Consumed, run_worker
from voicebot.errors import BrokerUnavailableError
from voicebot.jobs.broker import (
    BROKER_SOCKET_TIMEOUT_S,
    broker_kind,
    build_broker,
    close_broker,
    probe_broker,
)
from voicebot.jobs.dead_letters import dead_letter_store


def test_broker_url_picks_the_broker() -> None:
    """amqp:// → RabbitMQ, redis:// → Redis, unset → REDIS_URL's Redis, else the stub."""
    assert broker_kind(make_settings(broker_url="amqp://guest:guest@127.0.0.1:5672/%2F")) == (
        "rabbitmq"
    )
    assert broker_kind(make_settings(broker_url="redis://127.0.0.1:6379/2")) == "redis"
    assert broker_kind(make_settings(redis_url="redis://127.0.0.1:6379/2")) == "redis"
    assert broker_kind(make_settings()) == "stub"
    amqp_over_redis = make_settings(
        broker_url="amqp://127.0.0.1:5672/%2F", redis_url="redis://127.0.0.1:6379/2"
    )
    assert broker_kind(amqp_over_redis) == "rabbitmq"


def test_bad_broker_url_is_refused_at_start_up() -> None:
    """A BROKER_URL that is neither amqp:// nor redis:// fails Settings, naming the variable."""
    from voicebot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"(?i)broker_url"):
        make_settings(broker_url="kafka://127.0.0.1:9092")


def test_message_is_sent_and_consumed(broker: dramatiq.Broker, test_name: str) -> None:
    """A message sent through the broker (Stub, Redis, RabbitMQ for real) reaches its actor."""
    seen = Consumed()
    actor = dramatiq.actor(broker=broker, queue_name=test_name, actor_name=f"{test_name}_echo")(
        seen
    )
    probe_broker(broker)
    actor.send(7, "שלום")
    run_worker(broker, test_name, until=seen.event.is_set)
    assert seen.calls == [(7, "שלום")]


def test_failing_actor_is_dead_lettered_with_its_error(
    broker: dramatiq.Broker, test_name: str
) -> None:
    """An actor that fails past its retries leaves one dead letter: actor, args, error, when."""
    attempts: list[int] = []

    def explode(campaign_id: int) -> None:
        attempts.append(campaign_id)
        raise RuntimeError(f"boom {len(attempts)}")

    actor = dramatiq.actor(
        broker=broker,
        queue_name=test_name,
        actor_name=f"{test_name}_explode",
        max_retries=1,
        min_backoff=10,
        max_backoff=50,
    )(explode)
    store = dead_letter_store(broker)
    assert store is not None
    actor.send(42)
    run_worker(broker, test_name, until=lambda: bool(store.newest(10)))
    [letter] = store.newest(10)
    assert attempts == [42, 42]  # the first try and one retry
    assert letter.actor == f"{test_name}_explode" and letter.args == [42]
    assert letter.error == "RuntimeError: boom 2" and "explode" in letter.traceback
    assert letter.retries == 1 and letter.failed_at.tzinfo is not None


@pytest.mark.parametrize(
    ("url", "kind"),
    [("redis://127.0.0.1:1/0", "redis"), ("amqp://guest:guest@127.0.0.1:1/%2F", "rabbitmq")],
)
def test_unreachable_backend_fails_the_probe(url: str, kind: str) -> None:
    """A broker whose server refuses connections fails probe_broker, naming the backend."""
    down = build_broker(make_settings(broker_url=url))
    try:
        with pytest.raises(BrokerUnavailableError, match=f"^{kind}: "):
            probe_broker(down)
    finally:
        close_broker(down)


@pytest.mark.parametrize(
    "scheme", ["redis://127.0.0.1:{port}/0", "amqp://u:p@127.0.0.1:{port}/%2F"]
)
def test_send_to_a_stalled_broker_fails_within_its_bound(black_hole: int, scheme: str) -> None:
    """A broker that accepts and never answers fails a send after its bounded timeout, not
    never (RabbitMQ's own default waits 15 s; ours BROKER_SOCKET_TIMEOUT_S)."""
    broker = build_broker(make_settings(broker_url=scheme.format(port=black_hole)))
    actor = dramatiq.actor(broker=broker, actor_name="stalled", queue_name="stalled")(print)
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as info:
            actor.send("x")
    finally:
        close_broker(broker)
    assert "Timeout" in type(info.value).__name__
    assert time.monotonic() - started < BROKER_SOCKET_TIMEOUT_S + 3.0
