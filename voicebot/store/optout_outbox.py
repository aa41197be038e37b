"""The opt-out outbox: opt-outs heard on a call that the database could not take yet.

An :class:`OptOut` goes in when its do-not-call write failed (see
:mod:`voicebot.db.optouts`); every sweeper pass reads the outbox, writes each entry to
the database and only then removes it, so an entry stays until the database has it
(at least once: the write is idempotent).

Where it lives: a Redis list (``OUTBOX_KEY``) when Redis is configured, shared by every
process; else a bounded queue in this process's memory, read by this process's own
sweeper or drain loop (lost if the process exits before the database is back).

An entry the database refuses for good (not an outage: e.g. a value too long for its
column) is moved to a dead-letter list (``DEAD_LETTER_KEY``, or in memory) by
:meth:`OptOutOutbox.dead_letter`, so one bad entry never blocks the drain, and with it
all dialing.

Failure: Redis failing or stalling past ``call_timeout_s`` raises
:class:`~voicebot.errors.OutboxUnavailableError`, on a put and on a read alike; a full
local queue refuses a put the same way.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from voicebot.errors import OutboxUnavailableError

OUTBOX_KEY = "voicebot:optouts:outbox"
DEAD_LETTER_KEY = "voicebot:optouts:dead"
"""Entries the database refused for good (a value it cannot store): kept for an operator."""
OUTBOX_CALL_TIMEOUT_S = 0.5
"""One Redis command of the outbox; the caller is waiting on a put."""
LOCAL_OUTBOX_MAX_ENTRIES = 10_000
"""The in-process outbox's bound (opt-outs are a few a day; this is a long outage)."""


@dataclass(frozen=True, slots=True)
class OptOut:
    """One caller's request to be removed: who, from where, when."""

    phone: str | None  # E.164; None when only the lead is known (resolved at the write)
    lead_id: int | None
    source: str
    requested_at: datetime
    call_sid: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "phone": self.phone,
                "lead_id": self.lead_id,
                "source": self.source,
                "requested_at": self.requested_at.isoformat(),
                "call_sid": self.call_sid,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> OptOut:
        """Inverse of :meth:`to_json`; ``ValueError`` (or ``KeyError``) on a bad entry."""
        data = json.loads(raw)
        return cls(
            phone=data["phone"],
            lead_id=data["lead_id"],
            source=str(data["source"]),
            requested_at=datetime.fromisoformat(data["requested_at"]),
            call_sid=data.get("call_sid"),
        )


class OptOutOutbox:
    """Opt-outs waiting for the database, on Redis (``redis``) or in this process."""

    def __init__(
        self, *, redis: Any | None = None, call_timeout_s: float = OUTBOX_CALL_TIMEOUT_S
    ) -> None:
        self._redis = redis
        self._timeout_s = call_timeout_s
        self._local: deque[str] = deque()
        self._local_dead: deque[str] = deque(maxlen=LOCAL_OUTBOX_MAX_ENTRIES)

    @property
    def shared(self) -> bool:
        """True when every process sees the same outbox (Redis)."""
        return self._redis is not None

    async def put(self, entry: OptOut) -> None:
        """Append ``entry``; raises :class:`OutboxUnavailableError` when it was not kept."""
        raw = entry.to_json()
        if self._redis is None:
            if len(self._local) >= LOCAL_OUTBOX_MAX_ENTRIES:
                raise OutboxUnavailableError("the in-process opt-out outbox is full")
            self._local.append(raw)
            return
        await self._call(self._redis.rpush(OUTBOX_KEY, raw))

    async def peek(self, limit: int) -> list[str]:
        """The oldest ``limit`` entries as stored, left in the outbox."""
        if self._redis is None:
            return [self._local[i] for i in range(min(limit, len(self._local)))]
        values = await self._call(self._redis.lrange(OUTBOX_KEY, 0, limit - 1))
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    async def remove(self, raw: str) -> None:
        """Take out one entry as returned by :meth:`peek` (a no-op when already gone)."""
        if self._redis is None:
            if raw in self._local:
                self._local.remove(raw)
            return
        await self._call(self._redis.lrem(OUTBOX_KEY, 1, raw))

    async def dead_letter(self, raw: str) -> None:
        """Move one entry (as returned by :meth:`peek`) to the dead-letter list, in one
        Redis transaction: it is never in both lists, nor in neither."""
        if self._redis is None:
            if raw in self._local:
                self._local.remove(raw)
            self._local_dead.append(raw)
            return
        pipe = self._redis.pipeline(transaction=True)
        pipe.lrem(OUTBOX_KEY, 1, raw)
        pipe.rpush(DEAD_LETTER_KEY, raw)
        await self._call(pipe.execute())

    async def dead_letters(self) -> list[str]:
        """Every dead-lettered entry, oldest first."""
        if self._redis is None:
            return list(self._local_dead)
        values = await self._call(self._redis.lrange(DEAD_LETTER_KEY, 0, -1))
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    async def _call(self, command: Any) -> Any:
        import redis.exceptions

        try:
            async with asyncio.timeout(self._timeout_s):
                return await command
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            raise OutboxUnavailableError(
                f"opt-out outbox unavailable: {type(exc).__name__}"
            ) from exc
