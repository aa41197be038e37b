"""SpeechHandle: the one write of the agent's turn, as heard (whole, cut, dropped)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import structlog

from voicebot.brain.base import ChatTurn, ConversationState, Reply, ReplyEvent, Sentence
from voicebot.call.playout import Playout
from voicebot.call.recorder import TurnTimings
from voicebot.call.speech_handle import SpeechHandle

S1, S2, S3 = "אחת שתיים שלוש ארבע.", "חמש שש שבע שמונה.", "תשע עשר."
USER = "מה אתם עושים?"
FRAMES_PER_SENTENCE = 50


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.turns: list[tuple[str, str, bool]] = []

    def user_turn(self, text: str) -> None:
        self.turns.append(("user", text, False))

    def agent_turn(self, reply: Reply, _timings: TurnTimings, *, interrupted: bool) -> None:
        self.turns.append(("assistant", reply.text, interrupted))


class QueueingSpeaker:
    """Queues every sentence's frames at once (as a fast TTS would)."""

    def __init__(self, playout: Playout) -> None:
        self.playout = playout

    async def speak(self, events: AsyncGenerator[ReplyEvent, None], handle: Any) -> None:
        async for event in events:
            if isinstance(event, Reply):
                handle.final = event
                return
            utterance = self.playout.new_utterance(event.text)
            handle.utterances.append(utterance)
            self.playout.push_frames(utterance, [b"\xff" * 160] * FRAMES_PER_SENTENCE)
            self.playout.end_utterance(utterance)


def _brain_stream(
    state: ConversationState, *, end_call: bool = False
) -> AsyncGenerator[ReplyEvent, None]:
    """A brain that, like RuleBrain, appends the caller's words and its whole reply."""

    async def events() -> AsyncGenerator[ReplyEvent, None]:
        state.history.append(ChatTurn("user", USER))
        state.history.append(ChatTurn("assistant", f"{S1} {S2} {S3}"))
        for text in (S1, S2, S3):
            yield Sentence(text)
        yield Reply(f"{S1} {S2} {S3}", "llm", (), end_call=end_call, transfer=False)

    return events()


async def _noop(*_: object) -> None:
    return None


def _handle(
    clock: FakeClock, *, end_call: bool = False
) -> tuple[SpeechHandle, ConversationState, Playout, Recorder]:
    state = ConversationState(history=[ChatTurn("assistant", "שלום")])
    playout = Playout(_noop, _noop, _noop, clock=clock)
    recorder = Recorder()
    handle = SpeechHandle(
        turn_id=1,
        source=lambda: _brain_stream(state, end_call=end_call),
        timings=TurnTimings(started_at=0.0),
        state=state,
        playout=playout,
        speaker=QueueingSpeaker(playout),  # type: ignore[arg-type]
        recorder=recorder,  # type: ignore[arg-type]
        log=structlog.get_logger(),
        user_text=USER,
    )
    return handle, state, playout, recorder


def _history(state: ConversationState) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in state.history]


async def test_played_reply_is_committed_whole_after_its_last_mark() -> None:
    """Every mark back: history and transcript get the whole reply, not interrupted."""
    clock = FakeClock()
    handle, state, playout, recorder = _handle(clock)
    async with asyncio.TaskGroup() as tg:
        handle.start(tg)
        await handle.wait_generated()
    for utterance in handle.utterances:
        assert not handle.committed
        playout.on_mark(utterance.mark)
        handle.check_played()
    assert handle.committed
    reply = f"{S1} {S2} {S3}"
    assert _history(state)[1:] == [("user", USER), ("assistant", reply)]
    assert recorder.turns == [("user", USER, False), ("assistant", reply, False)]


async def test_barge_in_keeps_heard_sentences_and_the_played_share_of_the_cut_one() -> None:
    """S1 played, half of S2 played, S3 queued: history and transcript hold S1 and the
    first half of S2's words, marked interrupted."""
    clock = FakeClock()
    handle, state, playout, recorder = _handle(clock)
    async with asyncio.TaskGroup() as tg:
        handle.start(tg)
        await handle.wait_generated()
    first, second, _ = handle.utterances
    playout.on_mark(first.mark)
    second.play_start_at = clock.now
    second.frames_out = FRAMES_PER_SENTENCE
    clock.now += FRAMES_PER_SENTENCE * 0.020 / 2
    await handle.interrupt("barge_in")
    heard = f"{S1} חמש שש"
    assert handle.heard_text == heard
    assert _history(state)[1:] == [("user", USER), ("assistant", heard)]
    assert recorder.turns == [("user", USER, False), ("assistant", heard, True)]


async def test_reply_cut_before_any_audio_played_is_dropped_and_returns_the_words() -> None:
    """Caller spoke again while the reply was unplayed: nothing is committed and the
    caller's words come back for the merged turn."""
    clock = FakeClock()
    handle, state, _, recorder = _handle(clock)
    async with asyncio.TaskGroup() as tg:
        handle.start(tg)
        await handle.wait_generated()
        await handle.interrupt("caller_spoke")
    assert handle.dropped_user_text == USER
    assert _history(state) == [("assistant", "שלום")]
    assert recorder.turns == []


async def test_interrupt_cancels_the_generation_task_at_once() -> None:
    """A reply still being generated is cancelled by interrupt(); what it appended is undone
    except the caller's words."""
    state = ConversationState()
    playout = Playout(_noop, _noop, _noop)
    recorder = Recorder()
    started = asyncio.Event()

    async def slow() -> AsyncGenerator[ReplyEvent, None]:
        state.history.append(ChatTurn("user", USER))
        started.set()
        await asyncio.sleep(30)
        yield Sentence(S1)

    handle = SpeechHandle(
        turn_id=1,
        source=slow,
        timings=TurnTimings(started_at=0.0),
        state=state,
        playout=playout,
        speaker=QueueingSpeaker(playout),  # type: ignore[arg-type]
        recorder=recorder,  # type: ignore[arg-type]
        log=structlog.get_logger(),
        user_text=USER,
    )
    async with asyncio.timeout(2), asyncio.TaskGroup() as tg:
        handle.start(tg)
        await started.wait()
        await handle.interrupt("stop", clear=False)
    assert handle.committed and handle.generated
    assert _history(state) == [("user", USER)]
    assert recorder.turns == [("user", USER, False)]


async def test_end_call_of_a_reply_played_whole_stands() -> None:
    """The brain asked to end and the caller heard the whole reply: the end stands."""
    clock = FakeClock()
    handle, _, playout, _ = _handle(clock, end_call=True)
    async with asyncio.TaskGroup() as tg:
        handle.start(tg)
        await handle.wait_generated()
    for utterance in handle.utterances:
        playout.on_mark(utterance.mark)
    handle.check_played()
    assert handle.end_request is not None and handle.end_request.end_call


async def test_end_call_of_a_reply_not_cut_by_the_caller_stands() -> None:
    """Marks Twilio never echoed cut the reply, not the caller: the end stands."""
    clock = FakeClock()
    handle, _, _, _ = _handle(clock, end_call=True)
    async with asyncio.TaskGroup() as tg:
        handle.start(tg)
        await handle.wait_generated()
    await handle.interrupt("marks_lost")
    assert handle.end_request is not None


async def test_end_call_of_a_reply_the_caller_cut_is_withdrawn() -> None:
    """The caller spoke over (or pressed a key during) a reply that asked to end: no end
    is requested, and the stored turn does not claim one."""
    for reason in ("barge_in", "dtmf"):
        clock = FakeClock()
        handle, _, playout, recorder = _handle(clock, end_call=True)
        async with asyncio.TaskGroup() as tg:
            handle.start(tg)
            await handle.wait_generated()
        playout.on_mark(handle.utterances[0].mark)
        await handle.interrupt(reason)
        assert handle.final is not None and handle.final.end_call
        assert handle.end_request is None, reason
        assert recorder.turns[-1] == ("assistant", S1, True)


async def test_reply_cut_before_its_final_event_requests_no_end() -> None:
    """A reply cancelled before the brain's final event carries no end request, whatever
    the brain was about to decide."""
    state = ConversationState()
    playout = Playout(_noop, _noop, _noop)
    started = asyncio.Event()

    async def ends_late() -> AsyncGenerator[ReplyEvent, None]:
        started.set()
        yield Sentence(S1)
        await asyncio.sleep(30)
        yield Reply(S1, "end_call", (), end_call=True, transfer=False)

    handle = SpeechHandle(
        turn_id=1,
        source=ends_late,
        timings=TurnTimings(started_at=0.0),
        state=state,
        playout=playout,
        speaker=QueueingSpeaker(playout),  # type: ignore[arg-type]
        recorder=Recorder(),  # type: ignore[arg-type]
        log=structlog.get_logger(),
        user_text=USER,
    )
    async with asyncio.timeout(2), asyncio.TaskGroup() as tg:
        handle.start(tg)
        await started.wait()
        await asyncio.sleep(0)
        await handle.interrupt("barge_in")
    assert handle.final is None
    assert handle.end_request is None


async def test_reply_cut_before_any_audio_played_stores_no_agent_turn() -> None:
    """A key or a barge-in before a single frame of the reply played: the caller's words
    are stored, no empty agent turn is (the transcript holds what was said on the line),
    and the history gets no assistant turn."""
    for reason in ("barge_in", "dtmf", "stop"):
        clock = FakeClock()
        handle, state, _, recorder = _handle(clock)
        async with asyncio.TaskGroup() as tg:
            handle.start(tg)
            await handle.wait_generated()
            await handle.interrupt(reason)
        assert handle.final is not None and handle.heard_text == ""
        assert recorder.turns == [("user", USER, False)], reason
        assert _history(state)[1:] == [("user", USER)], reason
