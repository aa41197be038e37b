"""The greeting leaves on the loop iteration after the call's session starts.

Under load one event-loop iteration takes milliseconds (200 calls' frames, timers and
replies): a greeting that waited for the turn-loop task, then its generation task, then the
playout task to wake took three of them (greeting p99 12–15 ms at 200 rule calls here; the
target is 12). Now the greeting's generation task is the call's first, and it sends the
cached greeting's first frames itself (``Playout.pump``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conftest import local_call_services, local_session
from tests.unit.call.conftest import Wire
from voicebot.brain.base import ConversationState
from voicebot.call.speaker import prepare_greeting


class LoopIterations:
    """Counts event-loop iterations: a callback that schedules itself runs once in each."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def test_the_cached_greeting_leaves_one_iteration_after_the_session_starts(
    tmp_path: Path,
) -> None:
    wire = Wire()
    at_first_frame: list[int] = []
    first_frame = asyncio.Event()
    iterations: LoopIterations | None = None

    async def media(payload: bytes) -> None:
        if not at_first_frame and iterations is not None:
            at_first_frame.append(iterations.count)
            first_frame.set()
        await wire.media(payload)

    async with local_call_services(tmp_path) as services:
        # The voice webhook prepares the greeting while Twilio connects the stream.
        await prepare_greeting(services, ConversationState())
        call = await local_session(
            services, "CAgreet", send_media=media, send_mark=wire.mark, send_clear=wire.clear
        )
        running = asyncio.create_task(call.run())
        iterations = LoopIterations()  # its first tick runs just after the session's start
        await asyncio.wait_for(first_frame.wait(), timeout=10)
        iterations.stop()
        call.on_stop()
        await asyncio.wait_for(running, timeout=10)
    # Iteration 1: the session starts its tasks, greeting first; iteration 2: the
    # greeting's task queues the cached audio and sends (the tick of iteration 2 runs
    # after it). Before: turn loop, then generation, then the playout's wake-up.
    assert at_first_frame == [1]
    assert wire.sent[:10] == ["media"] * 10  # the lead's worth went out at once
