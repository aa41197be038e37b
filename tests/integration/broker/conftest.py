"""Brokers for real: RabbitMQ (vhost "/", queues named per test) and Redis (the test db)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
import pytest

from tests.conftest import make_settings, service_unavailable
from voicebot.config import Settings
from voicebot.jobs.broker import build_broker, close_broker

RABBITMQ_TEST_URL = os.environ.get(
    "VOICEBOT_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/%2F"
)
WAIT_S = 20.0  # a message must be consumed within this, even on a loaded machine


@pytest.fixture
def rabbitmq_url() -> str:
    """URL of the real RabbitMQ; skip locally / fail in CI when it is down."""
    import pika

    try:
        params = pika.URLParameters(RABBITMQ_TEST_URL)
        params.socket_timeout = 2
        params.connection_attempts = 1
        pika.BlockingConnection(params).close()
    except (pika.exceptions.AMQPError, OSError) as exc:
        service_unavailable("RabbitMQ", exc)
    return RABBITMQ_TEST_URL


@pytest.fixture
def test_name() -> str:
    """A queue/namespace name of this test's own, so parallel runs never share a queue."""
    return f"vbtest_{uuid.uuid4().hex[:10]}"


def delete_rabbit_queues(url: str, *names: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
    finally:
        connection.close()


@pytest.fixture(params=["stub", "redis", pytest.param("rabbitmq", marks=pytest.mark.integration)])
def broker_settings(request: pytest.FixtureRequest, test_name: str) -> Iterator[Settings]:
    """Settings selecting each broker for real; RabbitMQ queues of the test deleted after."""
    if request.param == "stub":
        yield make_settings()
        return
    if request.param == "redis":
        yield make_settings(redis_url=request.getfixturevalue("redis_url"))
        return
    url = request.getfixturevalue("rabbitmq_url")
    yield make_settings(broker_url=url)
    q = test_name
    delete_rabbit_queues(url, q, f"{q}.DQ", f"{q}.XQ", f"{test_name}.dead_letters")


@pytest.fixture
def broker(broker_settings: Settings, test_name: str) -> Iterator[dramatiq.Broker]:
    built = build_broker(broker_settings, namespace=test_name)
    yield built
    close_broker(built)


class Consumed:
    """What a test actor saw, with an event to wait on."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.event = threading.Event()

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)
        self.event.set()


def run_worker(broker: dramatiq.Broker, queue: str, until: Callable[[], bool]) -> None:
    """Consume ``queue`` on a real Dramatiq worker until ``until()`` or WAIT_S."""
    worker = dramatiq.Worker(broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        deadline = threading.Event()
        for _ in range(int(WAIT_S * 20)):
            if until():
                return
            deadline.wait(0.05)
    finally:
        worker.stop()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers: a stalled broker."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()
