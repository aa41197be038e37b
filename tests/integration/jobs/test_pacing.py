"""Calls-per-second pacing shared through the real Redis, and its in-process twin."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import redis.asyncio as aioredis

from voicebot.jobs.pacing import (
    EPOCH_KEY,
    LocalPacer,
    RedisPacer,
    Reservation,
    interval_s,
    send_window,
)


def _spaced(reservations: list[Reservation], step: float) -> None:
    """Slots (on the schedule's own clock) are never closer than ``step``, and a slot that
    had to wait (queued behind another) is exactly ``step`` after the one before: the
    schedule's arithmetic, whatever the machine's load made each call take. (Waits alone
    also hold how long each call took, so they cannot be compared under load.)"""
    ordered = sorted(reservations, key=lambda r: r.slot_s)
    for before, after in itertools.pairwise(ordered):
        assert after.slot_s - before.slot_s >= step - 1e-5
        if after.wait_s > 0:
            assert after.slot_s - before.slot_s == pytest.approx(step, abs=1e-5)


async def test_two_processes_share_one_schedule(redis_url: str) -> None:
    """Two pacers (two workers) reserving at once get slots one campaign interval apart,
    and the account rate bounds both campaigns together."""
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    try:
        pacers = [RedisPacer(c, account_cps=100.0, url=redis_url) for c in clients]
        reservations = await asyncio.gather(*(pacers[i % 2].reserve(1, 2.0) for i in range(8)))
        assert len({r.slot_s for r in reservations}) == 8
        _spaced(list(reservations), interval_s(2.0))
        assert any(r.wait_s > 0 for r in reservations)  # some queued: exact steps checked
        slow_account = RedisPacer(clients[0], account_cps=1.0, url=redis_url)
        first = await slow_account.reserve(2, 50.0)
        second = await slow_account.reserve(3, 50.0)
        _spaced([first, second], interval_s(1.0))
    finally:
        for client in clients:
            await client.aclose()


async def test_redis_restarted_empty_voids_old_reservations(redis_url: str) -> None:
    """A reservation made before Redis lost its data is not honoured: the holder reserves
    again on the new schedule instead of dialing beside it."""
    client = aioredis.from_url(redis_url)
    try:
        pacer = RedisPacer(client, account_cps=100.0, url=redis_url)
        epoch = (await pacer.reserve(1, 5.0)).epoch
        await client.delete(EPOCH_KEY)  # what an empty restart looks like to the holder
        new_epoch = (await pacer.reserve(1, 5.0)).epoch
        assert new_epoch != epoch
        await pacer.wait_for_slot(1, 50.0)  # still works on the new schedule
    finally:
        await client.aclose()


async def test_local_pacer_spaces_dials() -> None:
    """In-process pacing spaces one campaign's dials by its interval."""
    pacer = LocalPacer(account_cps=100.0)
    reservations = [await pacer.reserve(1, 4.0) for _ in range(4)]
    _spaced(reservations, interval_s(4.0))
    assert any(r.wait_s > 0 for r in reservations)


async def test_send_gate_holds_the_rate_whatever_came_before(redis_url: str) -> None:
    """Sends that reach the gate all at once (a late database, a busy loop), from two
    processes' threads, leave it no more than the rate allows in any window."""
    client = aioredis.from_url(redis_url)
    pacers = [RedisPacer(client, account_cps=100.0, url=redis_url) for _ in range(2)]
    try:
        sent: list[float] = []

        def send(i: int) -> None:
            sent.append(pacers[i % 2].gate(9, 4.0))  # the send time the gate logged

        await asyncio.gather(*(asyncio.to_thread(send, i) for i in range(8)))
        sent.sort()
        window_s, limit = send_window(4.0)
        later = zip(sent, sent[limit:], strict=False)
        assert all(b - a >= window_s - 1e-5 for a, b in later)
    finally:
        for pacer in pacers:
            pacer.close()
        await client.aclose()
