"""What the call unit tests share: a wire that records what the playout sent, and a
running playout on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from voicebot.call.playout import Playout

FRAME = b"\xff" * 160


class Wire:
    """Records what the playout sent, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def media(self, payload: bytes) -> None:
        self.sent.append("media")

    async def mark(self, name: str) -> None:
        self.sent.append(f"mark:{name}")

    async def clear(self) -> None:
        self.sent.append("clear")


@pytest.fixture
async def running() -> AsyncIterator[tuple[Playout, Wire]]:
    wire = Wire()
    playout = Playout(wire.media, wire.mark, wire.clear)
    task = asyncio.create_task(playout.run())
    try:
        yield playout, wire
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
