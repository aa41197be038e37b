"""Dead letters: Dramatiq messages that exhausted their retries, kept where the broker lives.

:class:`DeadLetterRecorder` is a Dramatiq middleware placed before ``Retries``, so its
``after_process_message`` runs after Retries has decided: when the message failed for
good it writes a :class:`DeadLetter` (actor, args, error, when) to a bounded store on
the broker's own backend — so the record survives a database outage, which is when
dead letters happen most:

- Stub broker: an in-process deque (:class:`MemoryDeadLetters`);
- Redis broker: a capped list ``<namespace>:dead_letters`` (:class:`RedisDeadLetters`);
- RabbitMQ broker: a durable queue ``<namespace>.dead_letters`` capped with
  ``x-max-length`` (:class:`RabbitDeadLetters`), listed by peeking (messages are read
  unacknowledged and returned when the channel closes).

Each store keeps at most :data:`DEAD_LETTERS_KEPT` records, newest first; its blocking
calls carry socket timeouts, so the API runs them in a thread under a deadline. The
broker's own dead-letter queues (``default.XQ``) are left as Dramatiq manages them.
A store that cannot be written logs ``dead_letter.record_failed`` with the message id
and carries on: the consumer thread must never die for a bookkeeping write.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import dramatiq
import structlog
from dramatiq.middleware import Middleware

log = structlog.get_logger(__name__)

DEAD_LETTERS_KEPT: Final = 1000  # records kept per store, oldest dropped first
TRACEBACK_MAX_CHARS: Final = 4000  # tail of the traceback kept with a record
ERROR_MAX_CHARS: Final = 500  # the one-line error
BACKEND_TIMEOUT_S: Final = 2.0  # connect/socket timeout of every store call
DEFAULT_NAMESPACE: Final = "voicebot"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message that failed for good. ``failed_at`` is UTC; ``args``/``kwargs`` as sent."""

    message_id: str
    queue: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    error: str
    traceback: str
    retries: int
    failed_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API and storage form (``failed_at`` as ISO 8601)."""
        data = asdict(self)
        data["failed_at"] = self.failed_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeadLetter:
        """Inverse of :meth:`to_json`; raises KeyError/ValueError on a malformed record."""
        return cls(
            message_id=str(data["message_id"]),
            queue=str(data["queue"]),
            actor=str(data["actor"]),
            args=list(data.get("args") or []),
            kwargs=dict(data.get("kwargs") or {}),
            error=str(data.get("error", "")),
            traceback=str(data.get("traceback", "")),
            retries=int(data.get("retries", 0)),
            failed_at=datetime.fromisoformat(data["failed_at"]),
        )


class DeadLetterStore(Protocol):
    """Where dead letters are kept. Blocking; each call bounded by its socket timeouts."""

    kind: str
    errors: tuple[type[Exception], ...]  # what its backend raises when down or stalled

    def record(self, letter: DeadLetter) -> None: ...

    def newest(self, limit: int) -> list[DeadLetter]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class MemoryDeadLetters:
    """In-process store for the Stub broker (the embedded default: one process)."""

    kind = "stub"
    errors: tuple[type[Exception], ...] = ()

    def __init__(self, *, kept: int = DEAD_LETTERS_KEPT) -> None:
        self._letters: deque[DeadLetter] = deque(maxlen=kept)
        self._lock = threading.Lock()

    def record(self, letter: DeadLetter) -> None:
        with self._lock:
            self._letters.appendleft(letter)

    def newest(self, limit: int) -> list[DeadLetter]:
        with self._lock:
            return list(self._letters)[:limit]

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


class RedisDeadLetters:
    """A capped Redis list, newest at the head (``LPUSH`` + ``LTRIM``)."""

    kind = "redis"

    def __init__(
        self, url: str, *, namespace: str = DEFAULT_NAMESPACE, kept: int = DEAD_LETTERS_KEPT
    ) -> None:
        import redis

        self.errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self.key = f"{namespace}:dead_letters"
        self._kept = kept
        self._client = redis.Redis.from_url(
            url, socket_timeout=BACKEND_TIMEOUT_S, socket_connect_timeout=BACKEND_TIMEOUT_S
        )

    def record(self, letter: DeadLetter) -> None:
        pipe = self._client.pipeline(transaction=True)
        pipe.lpush(self.key, json.dumps(letter.to_json()))
        pipe.ltrim(self.key, 0, self._kept - 1)
        pipe.execute()

    def newest(self, limit: int) -> list[DeadLetter]:
        return _decode_all(list(self._client.lrange(self.key, 0, max(limit, 1) - 1)))

    def ping(self) -> None:
        self._client.ping()

    def close(self) -> None:
        self._client.close()


class RabbitDeadLetters:
    """A durable RabbitMQ queue capped at ``kept`` messages (oldest dropped by the server)."""

    kind = "rabbitmq"

    def __init__(
        self, url: str, *, namespace: str = DEFAULT_NAMESPACE, kept: int = DEAD_LETTERS_KEPT
    ) -> None:
        import pika

        self.errors: tuple[type[Exception], ...] = (pika.exceptions.AMQPError, OSError)
        self.queue = f"{namespace}.dead_letters"
        self._kept = kept
        self._parameters = pika.URLParameters(url)
        self._parameters.socket_timeout = BACKEND_TIMEOUT_S
        self._parameters.blocked_connection_timeout = BACKEND_TIMEOUT_S
        self._parameters.stack_timeout = BACKEND_TIMEOUT_S * 2
        self._parameters.connection_attempts = 1
        self._lock = threading.Lock()  # pika connections are not thread-safe

    def record(self, letter: DeadLetter) -> None:
        import pika

        with self._lock, self._channel() as channel:
            channel.basic_publish(
                exchange="",
                routing_key=self.queue,
                body=json.dumps(letter.to_json()).encode(),
                properties=pika.BasicProperties(
                    delivery_mode=pika.DeliveryMode.Persistent,
                    content_type="application/json",
                ),
            )

    def newest(self, limit: int) -> list[DeadLetter]:
        """Peek: read up to ``kept`` messages unacknowledged; closing the channel returns them."""
        raw: list[bytes | str] = []
        with self._lock, self._channel() as channel:
            while len(raw) < self._kept:
                method, _properties, body = channel.basic_get(self.queue, auto_ack=False)
                if method is None:
                    break
                raw.append(body)
        return list(reversed(_decode_all(raw)))[:limit]

    def ping(self) -> None:
        with self._lock, self._channel():
            pass

    def close(self) -> None:
        return None

    @contextlib.contextmanager
    def _channel(self) -> Any:
        import pika

        connection = pika.BlockingConnection(self._parameters)
        try:
            channel = connection.channel()
            channel.queue_declare(self.queue, durable=True, arguments={"x-max-length": self._kept})
            yield channel
        finally:
            if connection.is_open:
                connection.close()


class DeadLetterRecorder(Middleware):
    """Writes a :class:`DeadLetter` when a message fails for good (add it before Retries)."""

    def __init__(self, store: DeadLetterStore) -> None:
        self.store = store

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None or not message.failed:
            return
        letter = dead_letter_of(message, exception)
        try:
            self.store.record(letter)
        except self.store.errors as exc:
            log.error(
                "dead_letter.record_failed",
                message_id=letter.message_id,
                actor=letter.actor,
                error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS],
            )
            return
        log.warning(
            "dead_letter.recorded",
            message_id=letter.message_id,
            actor=letter.actor,
            error=letter.error,
        )

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Bound the Stub broker's own dead-letter lists (it keeps every message for ever)."""
        by_queue = getattr(broker, "dead_letters_by_queue", None)
        if by_queue is not None:
            kept = by_queue[message.queue_name]
            del kept[: max(len(kept) - DEAD_LETTERS_KEPT, 0)]


def dead_letter_of(message: dramatiq.MessageProxy, exception: BaseException) -> DeadLetter:
    """The record of ``message`` that failed with ``exception`` (now, UTC)."""
    options = message.options
    return DeadLetter(
        message_id=message.message_id,
        queue=message.queue_name,
        actor=message.actor_name,
        args=list(message.args),
        kwargs=dict(message.kwargs),
        error=f"{type(exception).__name__}: {exception}"[:ERROR_MAX_CHARS],
        traceback=str(options.get("traceback") or "")[-TRACEBACK_MAX_CHARS:],
        retries=max(int(options.get("retries", 1)) - 1, 0),
        failed_at=datetime.now(UTC),
    )


def dead_letter_store(broker: dramatiq.Broker) -> DeadLetterStore | None:
    """The store of the broker's :class:`DeadLetterRecorder`, or None (built elsewhere)."""
    for middleware in broker.middleware:
        if isinstance(middleware, DeadLetterRecorder):
            return middleware.store
    return None


def _decode_all(raw: list[bytes | str]) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    for item in raw:
        try:
            letters.append(DeadLetter.from_json(json.loads(item)))
        except (ValueError, KeyError, TypeError):
            log.warning("dead_letter.unreadable_record", size=len(item))
    return letters
