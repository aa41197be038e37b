"""The call registry: admission under MAX_CALLS_PER_PROCESS and draining, and drain()'s
deadline that ends the remaining calls with a goodbye."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from voicebot.call import registry as registry_module
from voicebot.call.registry import CallRegistry, drain


@dataclass
class FakeCall:
    call_sid: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    asked: list[tuple[str, str]] = field(default_factory=list)

    def end_call(self, reason: str, goodbye_text: str) -> None:
        self.asked.append((reason, goodbye_text))
        self.ended.set()


async def _live(registry: CallRegistry, call: FakeCall) -> None:
    with registry.track(call):
        await call.ended.wait()


async def test_admission_is_bounded_by_max_calls_including_pending_streams() -> None:
    """With a bound of 2, a third webhook is refused while two calls are admitted, live or
    not yet streaming; a retried webhook of an admitted call is admitted again."""
    registry = CallRegistry(max_calls=2)
    assert registry.admit("CA1") is None
    assert registry.admit("CA2") is None
    assert registry.admit("CA1") is None
    assert registry.admit("CA3") == "full"
    call = FakeCall("CA1")
    task = asyncio.create_task(_live(registry, call))
    await asyncio.sleep(0)
    assert registry.live == 1
    assert registry.load() == 2
    call.ended.set()
    await task
    assert registry.admit("CA3") is None


async def test_pending_admissions_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    """An admitted call whose stream never opens stops counting after ADMISSION_HOLD_S."""
    monkeypatch.setattr(registry_module, "ADMISSION_HOLD_S", 0.05)
    registry = CallRegistry(max_calls=1)
    assert registry.admit("CA1") is None
    assert registry.admit("CA2") == "full"
    await asyncio.sleep(0.08)
    assert registry.admit("CA2") is None


async def test_draining_refuses_and_waits_for_live_calls() -> None:
    """drain() refuses new calls at once and returns True when the live call ends by itself."""
    registry = CallRegistry()
    call = FakeCall("CA1")
    task = asyncio.create_task(_live(registry, call))
    await asyncio.sleep(0)
    draining = asyncio.create_task(drain(registry, timeout_s=5, grace_s=1))
    await asyncio.sleep(0.05)
    assert registry.admit("CA2") == "draining"
    assert not draining.done()
    call.ended.set()
    assert await asyncio.wait_for(draining, 2) is True
    assert call.asked == []
    await task


async def test_drain_deadline_asks_the_remaining_calls_to_say_goodbye() -> None:
    """Past the drain timeout every live call is asked to end with the goodbye text."""
    registry = CallRegistry()
    calls = [FakeCall("CA1"), FakeCall("CA2")]
    tasks = [asyncio.create_task(_live(registry, c)) for c in calls]
    await asyncio.sleep(0)
    ended_by_itself = await drain(registry, timeout_s=0.1, goodbye_text="ביי", grace_s=1)
    assert ended_by_itself is False
    assert [c.asked for c in calls] == [[("drain", "ביי")], [("drain", "ביי")]]
    assert registry.live == 0
    await asyncio.gather(*tasks)
