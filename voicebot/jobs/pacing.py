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

Failure: when Redis cannot be reached, :meth:`RedisPacer.reserve` raises
:class:`PacingUnavailableError` and the caller waits instead of dialing unpaced.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from voicebot.errors import VoicebotError

PACING_MARGIN = 0.03
"""Slots are this fraction further apart than the rate asks, so network jitter between
our send and Twilio's arrival never puts one dial too many into a second."""
KEY_TTL_MS_MIN = 60_000
KEY_PREFIX = "voicebot:pace"

_RESERVE_LUA = """
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
return string.format('%.6f', slot - now)
"""


class PacingUnavailableError(VoicebotError):
    """The shared pacing store (Redis) cannot be reached; do not dial unpaced."""

    retryable = True
    code = "pacing_unavailable"


def interval_s(calls_per_second: float) -> float:
    """Seconds between two dial slots at ``calls_per_second`` (with the safety margin)."""
    return (1.0 / calls_per_second) * (1.0 + PACING_MARGIN)


class Pacer(Protocol):
    async def reserve(self, campaign_id: int, campaign_cps: float) -> float:
        """Reserve the next dial slot; return seconds to wait before dialing (≥ 0)."""
        ...


class LocalPacer:
    """In-process pacing for the embedded default (one process dials)."""

    def __init__(self, *, account_cps: float) -> None:
        self._account_interval_s = interval_s(account_cps)
        self._next: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def reserve(self, campaign_id: int, campaign_cps: float) -> float:
        async with self._lock:
            now = time.monotonic()
            keys = {f"c{campaign_id}": interval_s(campaign_cps), "a": self._account_interval_s}
            slot = max([now, *(self._next.get(k, 0.0) for k in keys)])
            for key, step in keys.items():
                self._next[key] = slot + step
            return slot - now


class RedisPacer:
    """Pacing shared by every process through one Redis (``redis.asyncio`` client)."""

    def __init__(self, redis: Any, *, account_cps: float) -> None:
        self._redis = redis
        self._account_interval_s = interval_s(account_cps)
        self._script = redis.register_script(_RESERVE_LUA)

    async def reserve(self, campaign_id: int, campaign_cps: float) -> float:
        import redis.exceptions

        campaign_step = interval_s(campaign_cps)
        ttl_ms = max(KEY_TTL_MS_MIN, int(max(campaign_step, self._account_interval_s) * 4000))
        try:
            wait = await self._script(
                keys=[f"{KEY_PREFIX}:campaign:{campaign_id}", f"{KEY_PREFIX}:account"],
                args=[campaign_step, self._account_interval_s, ttl_ms],
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            raise PacingUnavailableError(f"pacing store unavailable: {type(exc).__name__}") from exc
        return max(0.0, float(wait))
