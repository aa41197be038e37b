"""StreamHandoffs: a webhook's hand-over is taken once, by its own call, while fresh."""

from __future__ import annotations

from voicebot.brain.base import LeadContext
from voicebot.call.handoff import StreamHandoff, StreamHandoffs

SID = "CA" + "1" * 32


def _handoff(call_id: int = 7) -> StreamHandoff:
    lead = LeadContext(lead_id=3, name="דנה", company="נגרות השרון", phone="+972501234567")
    return StreamHandoff(call_id=call_id, lead=lead, script=None, records=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_taken_once_by_its_call() -> None:
    handoffs = StreamHandoffs()
    handoffs.put(SID, _handoff())
    assert handoffs.take(8, SID) is None  # a token for another call id: not this hand-over
    taken = handoffs.take(7, SID)
    assert taken is not None and taken.lead is not None and taken.lead.name == "דנה"
    assert handoffs.take(7, SID) is None
    assert len(handoffs) == 0


def test_a_retried_webhook_replaces_it() -> None:
    handoffs = StreamHandoffs()
    handoffs.put(SID, _handoff())
    handoffs.put(SID, StreamHandoff(call_id=7, lead=None, script=None, records=False))
    taken = handoffs.take(7, SID)
    assert taken is not None and (taken.lead, taken.records) == (None, False)


def test_expires_after_its_ttl() -> None:
    clock = Clock()
    handoffs = StreamHandoffs(ttl_s=15.0, timer=clock)
    handoffs.put(SID, _handoff())
    clock.now += 14.9
    assert handoffs.take(7, SID) is not None
    handoffs.put(SID, _handoff())
    clock.now += 15.1
    assert handoffs.take(7, SID) is None


def test_bounded_oldest_first() -> None:
    handoffs = StreamHandoffs(maxsize=2)
    for n in range(3):
        handoffs.put(f"CA{n}", _handoff(n))
    assert len(handoffs) == 2
    assert handoffs.take(0, "CA0") is None
    assert handoffs.take(2, "CA2") is not None


def test_dropped_when_the_call_ended() -> None:
    handoffs = StreamHandoffs()
    handoffs.put(SID, _handoff())
    handoffs.drop(SID)
    handoffs.drop("CA-unknown")
    assert handoffs.take(7, SID) is None


def test_a_held_call_is_not_handed_over_again() -> None:
    """A retried webhook while the stream runs leaves nothing, and the end of the hold
    drops what was left: a token replayed after the call hears nothing."""
    handoffs = StreamHandoffs()
    handoffs.put(SID, _handoff())
    assert handoffs.take(7, SID) is not None
    with handoffs.hold(7, SID):
        assert handoffs.held(7) and not handoffs.held(8)
        handoffs.put(SID, _handoff())  # a retried webhook while the stream runs
        assert handoffs.take(7, SID) is None
    assert not handoffs.held(7)
    assert handoffs.take(7, SID) is None
