"""SendGuard: a hung websocket send is detected within its timeout; healthy sends never trip it."""

from __future__ import annotations

import asyncio
import time

import pytest

from voicebot.call.send_guard import SendGuard
from voicebot.errors import PeerStalledError


async def test_a_hung_send_trips_the_watch_within_the_timeout() -> None:
    """A send that never completes makes watch() raise after about the timeout, not never."""
    guard = SendGuard(send_timeout_s=0.2)
    never = asyncio.Event()

    async def stuck(_: bytes) -> None:
        await never.wait()

    send = guard.guard(stuck)
    started = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        sending = tg.create_task(send(b"x"))
        with pytest.raises(PeerStalledError):
            await guard.watch()
        sending.cancel()
    assert 0.2 <= time.monotonic() - started < 0.4


async def test_healthy_sends_never_trip_the_watch() -> None:
    """Many quick sends over several timeout periods leave the watch running."""
    guard = SendGuard(send_timeout_s=0.1)
    sent: list[bytes] = []

    async def quick(payload: bytes) -> None:
        await asyncio.sleep(0.001)
        sent.append(payload)

    async def clear() -> None:
        sent.append(b"clear")

    send, send_clear = guard.guard(quick), guard.guard(clear)
    watching = asyncio.create_task(guard.watch())
    for _ in range(100):
        await send(b"f")
    await send_clear()
    await asyncio.sleep(0.2)
    assert not watching.done()
    watching.cancel()
    assert len(sent) == 101


async def test_a_hung_send_is_watched_after_another_send_is_cancelled() -> None:
    """Two sends hang on a full socket (a frame, then a barge-in's `clear`) and the
    frame's is cancelled (its reply was interrupted): the `clear` still hanging trips the
    watch within the timeout; the cancelled send must not stop the watch."""
    guard = SendGuard(send_timeout_s=0.2)
    never = asyncio.Event()

    async def stuck(_: bytes) -> None:
        await never.wait()

    send = guard.guard(stuck)
    started = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        frame = tg.create_task(send(b"frame"))
        clear = tg.create_task(send(b"clear"))
        await asyncio.sleep(0.05)
        frame.cancel()
        with pytest.raises(PeerStalledError):
            await asyncio.wait_for(guard.watch(), timeout=1.0)
        clear.cancel()
    assert 0.2 <= time.monotonic() - started < 0.4
