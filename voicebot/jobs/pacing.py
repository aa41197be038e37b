"""Calls-per-second pacing shared by every dialing process: slots reserved in advance.

Each dial reserves the next free slot on two schedules at once, the campaign's
(``1 / calls_per_second``) and the account's (``1 / TWILIO_CPS``), and sleeps until it.
The reservation is one atomic Redis script on Redis's own clock, so any number of
workers together never exceed either rate; without Redis (the embedded default) the
same arithmetic runs in-process. A reservation whose dial never happens (pause, crash)
only leaves a gap: pacing errs on the slow side.

A hit/test limiter (``limits``' moving window, Dramatiq's window limiter) makes a
process poll and retry, which bunches dials after each window; reserving a slot gives
evenly spaced dials, which is what holds a rate within a few percent.

Reserved slots space dials evenly; whatever runs between a slot and the request (the
database compare-and-set, a thread) adds jitter, so a last gate right before the request
keeps a log of actual send times (a Redis sorted set per schedule) and admits a send only
when the last second (``limit`` per ``window_s``, :func:`send_window`) has room.

Failure: when Redis cannot be reached, :meth:`RedisPacer.reserve` raises
:class:`PacingUnavailableError` and the caller waits instead of dialing unpaced.
"""

from __future__ import annotations

import asyncio
import collections
import math
import secrets
import threading
import time
from typing import Any, NamedTuple, Protocol

from voicebot.errors import VoicebotError

PACING_MARGIN = 0.04
"""Slots are this fraction further apart than the rate asks, so network jitter between
our send and Twilio's arrival never puts one dial too many into a second."""
KEY_TTL_MS_MIN = 60_000
KEY_PREFIX = "voicebot:pace"
MAX_RESERVATIONS = 3

EPOCH_KEY = f"{KEY_PREFIX}:epoch"
# KEYS: the schedules; ARGV: one interval per key, the TTL in ms, a fresh epoch token.
# The epoch names this Redis's schedule: a Redis restarted empty gets a new one, which
# voids reservations made before (their holders reserve again instead of dialing).
_RESERVE_LUA = f"""
local epoch = redis.call('GET', '{EPOCH_KEY}')
if not epoch then
  epoch = ARGV[#KEYS + 2]
  redis.call('SET', '{EPOCH_KEY}', epoch)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slot = now
for i, key in ipairs(KEYS) do
  local nxt = tonumber(redis.call('GET', key) or '0')
  if nxt > slot then slot = nxt end
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.6f', slot + tonumber(ARGV[i])), 'PX', ARGV[#KEYS + 1])
end
return {{string.format('%.6f', slot - now), epoch, string.format('%.6f', slot)}}
"""


# KEYS: send logs (sorted sets of send times); ARGV: window_s and limit per key, then a
# unique member. Admits the send (and logs it) only when every log has room: {0, the send
# time}; else {how long until the oldest send leaves the fullest window, 0}.
_GATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i - 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 * i]) then
    local oldest = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2])
    wait = math.max(wait, oldest + window - now)
  end
end
if wait > 0 then return {string.format('%.6f', wait), '0'} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[#ARGV])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 * i - 1]) * 1000) + 1000)
end
return {'0', string.format('%.6f', now)}
"""
GATE_MAX_WAIT_S = 3.0
"""The send gate gives up after this (the attempt goes back to be dialed later)."""


def send_window(calls_per_second: float) -> tuple[float, int]:
    """(window_s, limit): at most ``limit`` sends in any ``window_s`` — 2/s is 2 per 1.03 s,
    0.05/s is 1 per 20.6 s (with the safety margin)."""
    limit = max(1, math.floor(calls_per_second))
    return limit / calls_per_second * (1.0 + PACING_MARGIN), limit


class Reservation(NamedTuple):
    """A reserved dial slot: seconds to wait for it, the schedule's epoch, and the slot
    itself on the schedule's clock (Redis's, or ``time.monotonic`` in-process) — slots are
    what the schedule guarantees apart; waits also hold however long the call took."""

    wait_s: float
    epoch: bytes
    slot_s: float


class PacingUnavailableError(VoicebotError):
    """The shared pacing store (Redis) cannot be reached; do not dial unpaced."""

    retryable = True
    code = "pacing_unavailable"


def interval_s(calls_per_second: float) -> float:
    """Seconds between two dial slots at ``calls_per_second`` (with the safety margin)."""
    return (1.0 / calls_per_second) * (1.0 + PACING_MARGIN)


class Pacer(Protocol):
    async def wait_for_slot(self, campaign_id: int, campaign_cps: float) -> None:
        """Reserve the next dial slot and sleep until it; raises
        :class:`PacingUnavailableError` when the shared store is down (do not dial)."""
        ...

    def gate(self, campaign_id: int, campaign_cps: float) -> float:
        """The last check before the request leaves, run in the REST client's thread right
        before it sends (blocking): wait until the send logs of the campaign and the
        account have room, and log this send. Whatever delayed this dial since its slot
        (database, event loop, threads) cannot bunch sends past the rate. Waits at most
        ``GATE_MAX_WAIT_S``, then raises :class:`PacingUnavailableError`. Answers the
        send time it logged (on the schedule's clock)."""
        ...


class LocalPacer:
    """In-process pacing for the embedded default (one process dials)."""

    def __init__(self, *, account_cps: float) -> None:
        self._account_interval_s = interval_s(account_cps)
        self._account_window = send_window(account_cps)
        self._next: dict[str, float] = {}
        self._sent: dict[str, collections.deque[float]] = {}
        self._lock = asyncio.Lock()
        self._gate_lock = threading.Lock()

    async def wait_for_slot(self, campaign_id: int, campaign_cps: float) -> None:
        await asyncio.sleep((await self.reserve(campaign_id, campaign_cps)).wait_s)

    def gate(self, campaign_id: int, campaign_cps: float) -> float:
        rules = {f"c{campaign_id}": send_window(campaign_cps), "a": self._account_window}
        deadline = time.monotonic() + GATE_MAX_WAIT_S
        while True:
            with self._gate_lock:
                now = time.monotonic()
                wait = 0.0
                for key, (window_s, limit) in rules.items():
                    log = self._sent.setdefault(key, collections.deque())
                    while log and log[0] <= now - window_s:
                        log.popleft()
                    if len(log) >= limit:
                        wait = max(wait, log[0] + window_s - now)
                if wait <= 0:
                    for key in rules:
                        self._sent[key].append(now)
                    return now
            if now + wait > deadline:
                raise PacingUnavailableError("send gate stayed full")
            time.sleep(wait)

    async def reserve(self, campaign_id: int, campaign_cps: float) -> Reservation:
        """Reserve the next slot (on ``time.monotonic``'s clock)."""
        async with self._lock:
            now = time.monotonic()
            keys = {f"c{campaign_id}": interval_s(campaign_cps), "a": self._account_interval_s}
            slot = max([now, *(self._next.get(k, 0.0) for k in keys)])
            for key, step in keys.items():
                self._next[key] = slot + step
            return Reservation(slot - now, b"", slot)


class RedisPacer:
    """Pacing shared by every process through one Redis (``redis.asyncio`` client)."""

    def __init__(self, redis: Any, *, account_cps: float, url: str) -> None:
        import redis as sync_redis

        self._redis = redis
        # The gate runs in the REST client's thread: a blocking client of the same Redis.
        self._sync = sync_redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._sync_gate = self._sync.register_script(_GATE_LUA)
        self._account_interval_s = interval_s(account_cps)
        self._account_window = send_window(account_cps)
        self._script = redis.register_script(_RESERVE_LUA)

    def close(self) -> None:
        self._sync.close()

    def gate(self, campaign_id: int, campaign_cps: float) -> float:
        import redis.exceptions

        window_s, limit = send_window(campaign_cps)
        account_window_s, account_limit = self._account_window
        keys = [f"{KEY_PREFIX}:sent:campaign:{campaign_id}", f"{KEY_PREFIX}:sent:account"]
        args: list[float | str] = [
            window_s,
            limit,
            account_window_s,
            account_limit,
            secrets.token_hex(8),
        ]
        deadline = time.monotonic() + GATE_MAX_WAIT_S
        while True:
            try:
                wait, sent_at = (float(v) for v in self._sync_gate(keys=keys, args=args))
            except (redis.exceptions.RedisError, OSError) as exc:
                raise PacingUnavailableError(
                    f"pacing store unavailable: {type(exc).__name__}"
                ) from exc
            if wait <= 0:
                return sent_at
            if time.monotonic() + wait > deadline:
                raise PacingUnavailableError("send gate stayed full")
            time.sleep(wait)

    async def wait_for_slot(self, campaign_id: int, campaign_cps: float) -> None:
        for _ in range(MAX_RESERVATIONS):
            wait_s, epoch, _ = await self.reserve(campaign_id, campaign_cps)
            await asyncio.sleep(wait_s)
            if await self._call(self._redis.get, EPOCH_KEY) == epoch:
                return
        raise PacingUnavailableError("pacing store keeps restarting")

    async def reserve(self, campaign_id: int, campaign_cps: float) -> Reservation:
        """Reserve the next slot (on Redis's clock)."""
        campaign_step = interval_s(campaign_cps)
        ttl_ms = max(KEY_TTL_MS_MIN, int(max(campaign_step, self._account_interval_s) * 4000))
        wait, epoch, slot = await self._call(
            self._script,
            keys=[f"{KEY_PREFIX}:campaign:{campaign_id}", f"{KEY_PREFIX}:account"],
            args=[campaign_step, self._account_interval_s, ttl_ms, secrets.token_hex(8)],
        )
        return Reservation(
            max(0.0, float(wait)),
            epoch if isinstance(epoch, bytes) else str(epoch).encode(),
            float(slot),
        )

    async def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        import redis.exceptions

        try:
            return await func(*args, **kwargs)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise PacingUnavailableError(f"pacing store unavailable: {type(exc).__name__}") from exc
