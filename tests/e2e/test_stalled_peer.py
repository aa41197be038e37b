"""A half-dead caller (its websocket stops taking data) ends its own call within the send
timeout and never stalls another call sharing the event loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.e2e.conftest import local_call_services, local_session
from voicebot.call.playout import FRAME_S

SEND_TIMEOUT_S = 0.5


class Peer:
    """The server's view of one caller's websocket: sends either go through or hang."""

    def __init__(self, *, stall_after_frames: int | None) -> None:
        self.frames_at: list[float] = []
        self._stall_after = stall_after_frames
        self._never = asyncio.Event()

    async def media(self, payload: bytes) -> None:
        if self._stall_after is not None and len(self.frames_at) >= self._stall_after:
            await self._never.wait()  # TCP buffers full: the send never completes
        self.frames_at.append(time.monotonic())

    async def mark(self, name: str) -> None:
        return None

    async def clear(self) -> None:
        return None


async def test_stalled_peer_ends_its_call_and_the_other_call_keeps_its_pace(
    tmp_path: Path,
) -> None:
    """The stalled call ends within the send timeout (+ watchdog period); the healthy call's
    frames keep flowing at real time meanwhile (no gap over 100 ms)."""
    stalled, healthy = Peer(stall_after_frames=5), Peer(stall_after_frames=None)
    async with local_call_services(
        tmp_path,
        ws_send_timeout_s=SEND_TIMEOUT_S,
        inbound_media_timeout_s=60.0,  # these peers send no media; only their sends stall
    ) as services:
        stalled_call = await local_session(
            services,
            "CAstalled",
            send_media=stalled.media,
            send_mark=stalled.mark,
            send_clear=stalled.clear,
        )
        healthy_call = await local_session(
            services,
            "CAhealthy",
            send_media=healthy.media,
            send_mark=healthy.mark,
            send_clear=healthy.clear,
        )
        async with asyncio.TaskGroup() as tg:
            started = time.monotonic()
            stalled_task = tg.create_task(stalled_call.run())
            healthy_task = tg.create_task(healthy_call.run())
            await asyncio.wait_for(asyncio.shield(stalled_task), timeout=10)
            stalled_at = stalled.frames_at[-1] if stalled.frames_at else started
            ended_after_s = time.monotonic() - stalled_at
            await asyncio.sleep(0.3)
            assert not healthy_task.done()
            healthy_call.on_stop()
    assert SEND_TIMEOUT_S <= ended_after_s < SEND_TIMEOUT_S * 1.25 + 0.3
    # While the stalled call waited out its timeout, the healthy one kept real-time pace.
    during = [t for t in healthy.frames_at if stalled_at <= t <= stalled_at + SEND_TIMEOUT_S]
    assert len(during) >= 0.8 * SEND_TIMEOUT_S / FRAME_S


class FullSocket:
    """A caller's websocket whose buffers fill after ``frames`` frames: every later send
    (frame, mark or `clear`) hangs."""

    def __init__(self, *, frames: int) -> None:
        self.sent: list[str] = []
        self._frames = frames
        self.full = asyncio.Event()
        self._never = asyncio.Event()

    async def _send(self, kind: str) -> None:
        if self.sent.count("media") >= self._frames:
            self.full.set()
            await self._never.wait()
        self.sent.append(kind)

    async def media(self, payload: bytes) -> None:
        await self._send("media")

    async def mark(self, name: str) -> None:
        await self._send("mark")

    async def clear(self) -> None:
        await self._send("clear")


async def test_a_key_while_the_greeting_waits_on_a_full_socket_still_ends_the_call(
    tmp_path: Path,
) -> None:
    """The greeting's own task is stuck sending a frame to a socket that takes no more;
    the caller presses a key: the reply is cut (its stuck send cancelled) and the `clear`
    hangs too. The call still ends as ``peer_stalled`` within the send timeout."""
    socket = FullSocket(frames=5)
    async with local_call_services(
        tmp_path,
        ws_send_timeout_s=SEND_TIMEOUT_S,
        inbound_media_timeout_s=60.0,  # only the sends stall
    ) as services:
        call = await local_session(
            services,
            "CAfull",
            send_media=socket.media,
            send_mark=socket.mark,
            send_clear=socket.clear,
        )
        async with asyncio.TaskGroup() as tg:
            running = tg.create_task(call.run())
            await asyncio.wait_for(socket.full.wait(), timeout=10)
            key = tg.create_task(call.on_dtmf("5"))
            pressed_at = time.monotonic()
            await asyncio.wait({running}, timeout=3)
            ended_after_s = time.monotonic() - pressed_at
            ended_by_itself = running.done()
            call.on_stop()  # ends the call here when it hangs
            key.cancel()
    assert ended_by_itself, "the call hung on the `clear` to a full socket"
    assert call.end_reason == "peer_stalled"
    assert ended_after_s < SEND_TIMEOUT_S * 1.25 + 0.3
