"""The Dramatiq broker, chosen by Settings; nothing connects at import or at build.

``BROKER_URL`` picks the broker: ``amqp://``/``amqps://`` → RabbitMQ, ``redis://`` →
Redis. Unset: Redis at ``REDIS_URL`` when that is set, else the in-process
:class:`~dramatiq.brokers.stub.StubBroker` (one process: the embedded default).

Every broker built here carries a :class:`~voicebot.jobs.dead_letters.DeadLetterRecorder`
(before ``Retries``) whose store lives on the same backend, and :func:`probe_broker`
checks that backend for ``/health/ready``.
"""

from __future__ import annotations

from typing import Final, Literal

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries

from voicebot.config import Settings
from voicebot.errors import BrokerUnavailableError
from voicebot.jobs.dead_letters import (
    DEFAULT_NAMESPACE,
    DeadLetterRecorder,
    DeadLetterStore,
    MemoryDeadLetters,
    RabbitDeadLetters,
    RedisDeadLetters,
    dead_letter_store,
)

BrokerKind = Literal["stub", "redis", "rabbitmq"]
# Every broker connection is bounded, so a stalled server fails a send or a consume
# instead of hanging it (Dramatiq's Redis consumer polls: no blocking pop outlives these).
BROKER_CONNECT_TIMEOUT_S: Final = 2.0
BROKER_SOCKET_TIMEOUT_S: Final = 5.0
BROKER_NAMES: Final[dict[BrokerKind, str]] = {
    "stub": "StubBroker",
    "redis": "RedisBroker",
    "rabbitmq": "RabbitmqBroker",
}


def broker_url(settings: Settings) -> str | None:
    """The URL the broker connects to: ``BROKER_URL``, else ``REDIS_URL``, else None (stub)."""
    return settings.broker_url or settings.redis_url


def broker_kind(settings: Settings) -> BrokerKind:
    """Which broker Settings select (see the module docstring)."""
    url = broker_url(settings)
    if url is None:
        return "stub"
    return "rabbitmq" if url.startswith(("amqp://", "amqps://")) else "redis"


def build_broker(settings: Settings, *, namespace: str = DEFAULT_NAMESPACE) -> dramatiq.Broker:
    """A new broker for Settings, with the dead-letter recorder. Connects lazily.

    ``namespace`` names the dead-letter store's key/queue (tests isolate themselves).
    """
    kind, url = broker_kind(settings), broker_url(settings)
    broker: dramatiq.Broker
    store: DeadLetterStore
    if kind == "rabbitmq" and url is not None:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url)
        _bound_rabbitmq(broker)
        store = RabbitDeadLetters(url, namespace=namespace)
    elif kind == "redis" and url is not None:
        import redis
        from dramatiq.brokers.redis import RedisBroker

        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=BROKER_CONNECT_TIMEOUT_S,
            socket_timeout=BROKER_SOCKET_TIMEOUT_S,
        )
        broker = RedisBroker(client=client)  # type: ignore[no-untyped-call]
        store = RedisDeadLetters(url, namespace=namespace)
    else:
        broker = StubBroker()
        store = MemoryDeadLetters()
    broker.add_middleware(DeadLetterRecorder(store), before=Retries)
    return broker


def _bound_rabbitmq(broker: dramatiq.Broker) -> None:
    """Give every RabbitMQ connection of the broker bounded connect/IO timeouts."""
    parameters = getattr(broker, "parameters", None)
    for params in parameters if isinstance(parameters, list) else [parameters]:
        if params is None:
            continue
        params.socket_timeout = BROKER_CONNECT_TIMEOUT_S
        params.stack_timeout = BROKER_SOCKET_TIMEOUT_S
        params.blocked_connection_timeout = BROKER_SOCKET_TIMEOUT_S
        params.connection_attempts = 1


def probe_broker(broker: dramatiq.Broker) -> None:
    """Blocking check that the broker's backend answers (Redis ping, RabbitMQ connection).

    Bounded by the store's socket timeouts. Raises :class:`BrokerUnavailableError`
    naming the backend and its error when it is down. The stub always answers; a broker
    built elsewhere (no recorder) is assumed reachable.
    """
    store = dead_letter_store(broker)
    if store is None:
        return
    try:
        store.ping()
    except store.errors as exc:
        raise BrokerUnavailableError(f"{store.kind}: {type(exc).__name__}: {exc}"[:300]) from exc


def close_broker(broker: dramatiq.Broker) -> None:
    """Close the broker and its dead-letter store."""
    store = dead_letter_store(broker)
    broker.close()
    if store is not None:
        store.close()
