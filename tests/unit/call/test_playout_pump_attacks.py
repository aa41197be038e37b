"""Attacks on :meth:`Playout.pump` (0f00097): the task that queued frames sends what is
due itself, one sender at a time with the playout's own task.

The design before it (a232806: the playout's task the only sender) is kept below as the
reference. Random sequences of pushes, ends, clears, drops, echoes, clock steps and
pumps (awaited by the pushing task, or from a task of their own, also while a send is
awaited) run on both; once both are idle, what went on the wire and every counter of
every sentence must agree. Targeted cases follow: a pumping task cancelled while its
send is awaited (a barge-in cuts the reply whose task was sending).
"""

from __future__ import annotations

import asyncio
import random
import types
from collections.abc import AsyncIterator

import pytest

import voicebot.call.playout as playout_module
from tests.unit.call.test_playout_attacks import Clock, PayloadWire, _frames
from voicebot.call.playout import (
    _EPSILON_S,
    FRAME_S,
    PLAYOUT_LEAD_S,
    PLAYOUT_REFILL_S,
    Playout,
    Utterance,
)

LEAD_FRAMES = round(PLAYOUT_LEAD_S / FRAME_S)
_REAL_SLEEP = asyncio.sleep
_SETTLE_YIELDS = 200  # more than a batch of sends and marks takes, one yield each


async def _yield_sleep(delay: float) -> None:
    await _REAL_SLEEP(0)


class RunAlone(Playout):
    """``git show a232806:voicebot/call/playout.py``'s run(): the only sender."""

    async def run(self) -> None:
        queue = self._queue
        clock = self.clock
        send_media = self.send_media
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = clock()
            if self._play_until < now:
                if self._mid_utterance:
                    self.underruns += 1
                self._play_until = now
            lead_until = now + (PLAYOUT_LEAD_S - _EPSILON_S)
            while queue and self._play_until < lead_until:
                entry = queue.popleft()
                if isinstance(entry, bytes):
                    utterance = self._playing
                    if self.first_frame_at is None:
                        self.first_frame_at = now
                    if utterance is not None and utterance.play_start_at is None:
                        utterance.play_start_at = self._play_until
                    epoch = self._epoch
                    await send_media(entry)
                    if utterance is not None:
                        utterance.frames_out += 1
                        if utterance.first_sent_at is None:
                            utterance.first_sent_at = clock()
                    if self._epoch != epoch:
                        break
                    self._play_until += FRAME_S
                    self._mid_utterance = True
                elif isinstance(entry, Utterance):
                    self._playing = entry
                else:
                    epoch = self._epoch
                    await self.send_mark(entry)
                    self._mid_utterance = False
                    if self._epoch != epoch:
                        break
            if queue:
                await _yield_sleep(max(0.0, self._play_until - clock() - PLAYOUT_REFILL_S))

    async def pump(self) -> None:
        return None


@pytest.fixture
def stepped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The playout's pacing sleep yields once instead of waiting real time."""
    shim = types.SimpleNamespace(sleep=_yield_sleep, Event=asyncio.Event, timeout=asyncio.timeout)
    monkeypatch.setattr(playout_module, "asyncio", shim)


async def _settle() -> None:
    for _ in range(_SETTLE_YIELDS):
        await _REAL_SLEEP(0)


_FIELDS = (
    "frames_sent",
    "frames_out",
    "first_sent_at",
    "play_start_at",
    "heard",
    "done_enqueuing",
    "cut",
    "heard_fraction",
)


def _same(
    new: Playout,
    ref: Playout,
    new_wire: PayloadWire,
    ref_wire: PayloadWire,
    pairs: list[tuple[Utterance, Utterance]],
    where: str,
) -> None:
    assert new_wire.sent == ref_wire.sent, where
    for n, r in pairs:
        for name in _FIELDS:
            assert getattr(n, name) == getattr(r, name), f"{where}: {n.mark}.{name}"
    assert new.underruns == ref.underruns, where
    assert new.speaking == ref.speaking, where
    assert new.idle_since == ref.idle_since, where
    assert new.first_frame_at == ref.first_frame_at, where
    assert list(new._queue) == list(ref._queue), where
    assert not new._sending, where


async def _into_send(wires: list[PayloadWire], media_sent: int) -> bool:
    """Yield until each wire has sent ``media_sent`` frames and awaits the last one's
    send (the same frame on both designs); False when one never gets there."""
    for _ in range(_SETTLE_YIELDS):
        if all(
            w.in_send and sum(kind == "media" for kind, _ in w.sent) == media_sent for w in wires
        ):
            return True
        if any(sum(kind == "media" for kind, _ in w.sent) > media_sent for w in wires):
            return False
        await _REAL_SLEEP(0)
    return False


@pytest.mark.usefixtures("stepped")
@pytest.mark.parametrize("yielding", [False, True], ids=["sync-send", "awaited-send"])
@pytest.mark.parametrize("seed", range(100))
async def test_random_operations_with_pumps_match_the_lone_sender(
    seed: int, yielding: bool
) -> None:
    """Random pushes followed by a pump (awaited by the pushing task, or from a task of
    its own), stray pumps, ends, clears and drops (also while a frame's send is awaited
    by either sender, the next reply queued before it returns), echoes, expiries and
    clock steps: the wire, every sentence's
    counters and times, the underruns and the queue are as with the playout's task
    sending alone, and no send is left marked in progress."""
    rng = random.Random(seed)
    clock = Clock()
    new_wire, ref_wire = PayloadWire(yielding=yielding), PayloadWire(yielding=yielding)
    new = Playout(new_wire.media, new_wire.mark, new_wire.clear, clock=clock)
    ref = RunAlone(ref_wire.media, ref_wire.mark, ref_wire.clear, clock=clock)
    tasks = [asyncio.create_task(new.run()), asyncio.create_task(ref.run())]
    pumps: list[asyncio.Task[None]] = []
    pairs: list[tuple[Utterance, Utterance]] = []
    echoed: set[str] = set()
    counter = [0]
    ops = ["new", "push_pump", "push_pump", "push_task", "push", "pump", "pump_task", "end"]
    ops += ["tick", "tick", "echo", "expire", "clear", "drop", "clear_mid", "drop_mid"]
    try:
        for step in range(120):
            op = rng.choice(ops)
            where = f"seed {seed} step {step} {op}"
            if op == "new":
                pairs.append((new.new_utterance(f"s{step}"), ref.new_utterance(f"s{step}")))
            elif op.startswith("push") and pairs:
                index = len(pairs) - 1 - min(len(pairs) - 1, int(rng.expovariate(0.7)))
                frames = _frames(counter, rng.choice([0, 1, 2, 3, 5, 13, 24]))
                new.push_frames(pairs[index][0], frames)
                ref.push_frames(pairs[index][1], frames)
                if op == "push_pump":
                    await new.pump()  # as the generation task does
                elif op == "push_task":
                    pumps.append(asyncio.create_task(new.pump()))
            elif op == "pump":
                await new.pump()
            elif op == "pump_task":
                pumps.append(asyncio.create_task(new.pump()))
            elif op == "end" and pairs:
                index = len(pairs) - 1 - min(len(pairs) - 1, int(rng.expovariate(1.0)))
                new.end_utterance(pairs[index][0])
                ref.end_utterance(pairs[index][1])
            elif op == "tick":
                clock.now += rng.choice([0.0, 0.01, 0.02, 0.04, 0.1, 0.15, 0.3, 1.0])
            elif op == "echo":
                marks = [m for kind, m in new_wire.sent if kind == "mark" and m not in echoed]
                if marks:
                    name = str(rng.choice(marks))
                    echoed.add(name)
                    new.on_mark(name)
                    ref.on_mark(name)
            elif op == "expire":
                assert [u.mark for u in new.expire_marks()] == [u.mark for u in ref.expire_marks()]
            elif op in ("clear", "drop", "clear_mid", "drop_mid"):
                if op.endswith("_mid"):
                    # Make frames due (a refill, or a new reply's first ones, sent by a
                    # pump or by the playout's task), then land between the same two
                    # frames on both: a frame's send awaited.
                    sent = sum(kind == "media" for kind, _ in new_wire.sent)
                    if rng.random() < 0.5 or not pairs:
                        clock.now += rng.choice([0.1, 0.15, 0.3])
                    else:
                        frames = _frames(counter, rng.choice([3, 13, 24]))
                        new.push_frames(pairs[-1][0], frames)
                        ref.push_frames(pairs[-1][1], frames)
                        if rng.random() < 0.5:
                            pumps.append(asyncio.create_task(new.pump()))
                    into = sent + rng.randint(1, 3)
                    if not yielding or not await _into_send([new_wire, ref_wire], into):
                        await _settle()
                        _same(new, ref, new_wire, ref_wire, pairs, where)
                        continue
                if op.startswith("clear"):
                    assert [u.mark for u in await new.clear()] == [
                        u.mark for u in await ref.clear()
                    ]
                else:
                    assert [u.mark for u in new.drop()] == [u.mark for u in ref.drop()]
                if op.endswith("_mid") and rng.random() < 0.5:
                    # A key's cached reply, queued while the cut frame's send is awaited.
                    pairs.append((new.new_utterance(f"k{step}"), ref.new_utterance(f"k{step}")))
                    frames = _frames(counter, rng.choice([1, 5, 30]))
                    new.push_frames(pairs[-1][0], frames)
                    ref.push_frames(pairs[-1][1], frames)
                    if rng.random() < 0.5:
                        pumps.append(asyncio.create_task(new.pump()))
            await _settle()
            _same(new, ref, new_wire, ref_wire, pairs, where)
        for _ in range(60):
            clock.now += 0.1
            await _settle()
        _same(new, ref, new_wire, ref_wire, pairs, f"seed {seed} drained")
        assert all(task.done() for task in pumps)
    finally:
        for task in tasks + pumps:
            task.cancel()
        await asyncio.gather(*tasks, *pumps, return_exceptions=True)


# ---- a pumping task cancelled while its send is awaited --------------------------------


class SlowSocket:
    """A wire whose media sends wait for ``gate`` once ``slow`` is set (the socket's
    buffer is full); a frame is on the wire only once its send returns."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.slow = False
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def media(self, payload: bytes) -> None:
        if self.slow:
            self.waiting.set()
            await self.gate.wait()
        self.sent.append(payload.decode())

    async def mark(self, name: str) -> None:
        self.sent.append(f"mark:{name}")

    async def clear(self) -> None:
        self.sent.append("clear")


@pytest.fixture
async def slow() -> AsyncIterator[tuple[Playout, SlowSocket, asyncio.Task[None]]]:
    socket = SlowSocket()
    playout = Playout(socket.media, socket.mark, socket.clear)
    task = asyncio.create_task(playout.run())
    try:
        yield playout, socket, task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_reply_cut_while_its_task_waits_on_a_send_leaves_the_playout_working(
    slow: tuple[Playout, SlowSocket, asyncio.Task[None]],
) -> None:
    """The generation task waits in pump() on a full socket when the caller barges in
    (its task cancelled, then `clear`): the cut reply sends nothing more, the playout's
    own task is not left waiting for the cancelled sender, and the next reply goes out
    paced from now, whole, with no underrun."""
    playout, socket, run = slow
    cut = playout.new_utterance("שלום, מדברת נועה מהמרפאה")
    socket.slow = True

    async def speak() -> None:  # the generation task: queue a chunk, send what is due
        playout.push_frames(cut, [f"a{i:02d}".encode() for i in range(40)])
        await playout.pump()

    pumping = asyncio.create_task(speak())
    await asyncio.wait_for(socket.waiting.wait(), 1.0)
    await asyncio.sleep(0.01)  # the playout's task woke and waits for the sender
    pumping.cancel()
    await playout.clear()
    with pytest.raises(asyncio.CancelledError):
        await pumping
    assert not playout._sending
    socket.slow = False
    socket.gate.set()
    assert socket.sent == ["clear"] and cut.cut and cut.frames_out == 0
    after = playout.new_utterance("כן, אני שומעת")
    playout.push_frames(after, [f"b{i:02d}".encode() for i in range(15)])
    playout.end_utterance(after)
    await asyncio.sleep(0.01)
    assert socket.sent[1:] == [f"b{i:02d}" for i in range(LEAD_FRAMES)]  # by run()
    await asyncio.sleep(0.25)
    assert socket.sent[1:] == [f"b{i:02d}" for i in range(15)] + [f"mark:{after.mark}"]
    assert after.frames_out == 15 and playout.underruns == 0
    assert not run.done()
