"""Speculative replies: held audio, gated tool writes and state put back on discard."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import pytest

from tests.unit.call.conftest import FRAME, Wire
from voicebot.brain.base import BookingResult, ChatTurn, ConversationState
from voicebot.call.playout import Playout
from voicebot.call.speculation import HeldSink, ToolGate, restore, same_words, snapshot


async def test_held_audio_is_not_sent_and_agent_is_not_speaking(
    running: tuple[Playout, Wire],
) -> None:
    """While held, a reply's sentences send nothing and do not make the agent 'speaking'
    (which would switch the endpointer to barge-in thresholds)."""
    playout, wire = running
    sink = HeldSink(playout)
    utterance = sink.new_utterance("שלום")
    sink.push_frames(utterance, [FRAME] * 5)
    sink.end_utterance(utterance)
    await asyncio.sleep(0.05)
    assert wire.sent == []
    assert not playout.speaking
    assert sink.held_frames == 5


async def test_release_sends_held_audio_in_order_then_passes_through(
    running: tuple[Playout, Wire],
) -> None:
    """On release the held sentences go out in order with their marks, and sentences
    that come later go straight to the playout."""
    playout, wire = running
    sink = HeldSink(playout)
    first = sink.new_utterance("שלום")
    sink.push_frames(first, [FRAME] * 2)
    sink.end_utterance(first)
    second = sink.new_utterance("מה שלומך")
    sink.push_frames(second, [FRAME])
    sink.release()
    sink.push_frames(second, [FRAME])
    sink.end_utterance(second)
    third = sink.new_utterance("ביי")
    sink.push_frames(third, [FRAME])
    sink.end_utterance(third)
    await asyncio.sleep(0.1)
    assert wire.sent == [
        "media",
        "media",
        f"mark:{first.mark}",
        "media",
        "media",
        f"mark:{second.mark}",
        "media",
        f"mark:{third.mark}",
    ]


async def test_discarded_hold_sends_nothing(running: tuple[Playout, Wire]) -> None:
    """A discarded speculation never reaches the wire."""
    playout, wire = running
    sink = HeldSink(playout)
    utterance = sink.new_utterance("שלום")
    sink.push_frames(utterance, [FRAME] * 3)
    sink.discard()
    await asyncio.sleep(0.05)
    assert wire.sent == []
    assert not playout.speaking


class RecordingTools:
    def __init__(self) -> None:
        self.booked: list[datetime] = []
        self.clock = None

    async def available_slots(
        self, *, day: date | None, now: datetime, limit: int
    ) -> list[datetime]:
        return [now]

    async def book_meeting(self, *, start: datetime, notes: str | None) -> BookingResult:
        self.booked.append(start)
        return BookingResult(status="ok", meeting_id=1, start=start)

    async def schedule_callback(self, *, when: datetime) -> None: ...

    async def mark_not_interested(self, *, reason: str) -> None: ...

    async def add_to_do_not_call(self) -> None: ...


async def test_tool_writes_wait_for_release_and_reads_do_not() -> None:
    """While held, a booking waits (a discarded reply never books); reads go through."""
    tools = RecordingTools()
    gate = ToolGate(tools)
    now = datetime(2026, 3, 1, 10, 0)
    gate.hold()
    assert await gate.available_slots(day=None, now=now, limit=3) == [now]
    booking = asyncio.create_task(gate.book_meeting(start=now, notes=None))
    await asyncio.sleep(0.02)
    assert tools.booked == []
    gate.release()
    assert (await booking).ok
    assert tools.booked == [now]
    assert gate.clock is None  # other attributes are the wrapped tools'


async def test_cancelled_held_write_never_happens() -> None:
    """A held write cancelled with its reply leaves no trace."""
    tools = RecordingTools()
    gate = ToolGate(tools)
    gate.hold()
    booking = asyncio.create_task(gate.book_meeting(start=datetime(2026, 3, 1), notes=None))
    await asyncio.sleep(0.01)
    booking.cancel()
    gate.release()
    await asyncio.sleep(0.01)
    assert tools.booked == []


def test_restore_puts_state_back_in_place() -> None:
    """restore() returns the very same state object to its snapshot (history, stage)."""
    state = ConversationState(history=[ChatTurn(role="assistant", content="שלום")])
    before = snapshot(state)
    state.stage = "booking"
    state.history.append(ChatTurn(role="user", content="כן"))
    history = state.history
    restore(state, before)
    assert state.stage == "greeting"
    assert [t.content for t in state.history] == ["שלום"]
    assert history is not state.history or len(history) == 1


@pytest.mark.parametrize(
    ("partial", "final", "same"),
    [
        ("כן אפשר לדבר עכשיו", "כן, אפשר לדבר עכשיו.", True),
        ("כֵּן מעניין אותי", "כן מעניין אותי", True),
        ("כן אפשר", "כן, אפשר לדבר עכשיו", False),
        ("מה המחיר", "מה המחיר של השירות?", False),
    ],
)
def test_same_words_ignores_punctuation_and_niqqud_only(
    partial: str, final: str, same: bool
) -> None:
    """A partial transcript answers the turn only when its words are the final's."""
    assert same_words(partial, final) is same
