"""Outbound playout: pacing lead, marks after sentences, clear, and honest underrun counting."""

from __future__ import annotations

import asyncio
import gc

import pytest

from tests.unit.call.conftest import FRAME, Wire
from voicebot.call.playout import FRAME_S, PLAYOUT_LEAD_S, PLAYOUT_REFILL_S, Playout


async def test_sends_only_the_lead_ahead_of_real_time(running: tuple[Playout, Wire]) -> None:
    """A long sentence goes out 200 ms ahead at first, not all at once."""
    playout, wire = running
    utterance = playout.new_utterance("שלום")
    playout.push_frames(utterance, [FRAME] * 50)
    playout.end_utterance(utterance)
    await asyncio.sleep(0.01)
    assert wire.sent.count("media") == round(PLAYOUT_LEAD_S / FRAME_S)
    assert playout.speaking


async def test_mark_follows_the_sentence_and_echo_drains(running: tuple[Playout, Wire]) -> None:
    """The mark goes right after the sentence's last frame; its echo means it was heard."""
    playout, wire = running
    utterance = playout.new_utterance("שלום")
    playout.push_frames(utterance, [FRAME] * 3)
    playout.end_utterance(utterance)
    await asyncio.sleep(0.01)
    assert wire.sent == ["media"] * 3 + [f"mark:{utterance.mark}"]
    assert playout.on_mark(utterance.mark) is utterance and utterance.heard
    assert await playout.wait_drained(0.1)


async def test_clear_drops_queued_audio_and_returns_unheard(running: tuple[Playout, Wire]) -> None:
    """Barge-in: queued frames are dropped, `clear` is sent, the cut sentences are returned."""
    playout, wire = running
    first = playout.new_utterance("משפט ראשון.")
    playout.push_frames(first, [FRAME] * 40)
    playout.end_utterance(first)
    await asyncio.sleep(0.01)
    cut = await playout.clear()
    sent_before = wire.sent.count("media")
    await asyncio.sleep(0.05)
    assert [u.text for u in cut] == ["משפט ראשון."]
    assert wire.sent[-1] == "clear" and wire.sent.count("media") == sent_before
    assert not playout.speaking


async def test_underrun_only_when_a_sentence_runs_dry(running: tuple[Playout, Wire]) -> None:
    """A gap inside a sentence is an underrun; a pause between sentences is not."""
    playout, _ = running
    first = playout.new_utterance("א")
    playout.push_frames(first, [FRAME] * 2)
    playout.end_utterance(first)
    await asyncio.sleep(0.1)  # the first sentence has played out: a pause, not an underrun
    second = playout.new_utterance("ב")
    playout.push_frames(second, [FRAME] * 2)
    await asyncio.sleep(0.1)  # TTS is late mid-sentence: Twilio ran dry
    assert playout.underruns == 0
    playout.push_frames(second, [FRAME] * 2)
    await asyncio.sleep(0.01)
    assert playout.underruns == 1


async def test_frames_of_a_cleared_sentence_are_never_sent(running: tuple[Playout, Wire]) -> None:
    """TTS that finishes a sentence after the barge-in's clear cannot sneak its audio out."""
    playout, wire = running
    late = playout.new_utterance("משפט שנחתך")
    playout.push_frames(late, [FRAME] * 2)
    await asyncio.sleep(0.01)
    await playout.clear()
    sent = wire.sent.count("media")
    playout.push_frames(late, [FRAME] * 20)
    playout.end_utterance(late)
    await asyncio.sleep(0.05)
    assert late.cut
    assert wire.sent.count("media") == sent
    assert f"mark:{late.mark}" not in wire.sent


async def test_expire_marks_takes_only_played_out_audio_as_heard(
    running: tuple[Playout, Wire],
) -> None:
    """Marks never echoed: a sentence played out by the clock is taken as heard; one whose
    audio is still playing keeps its mark pending."""
    playout, _ = running
    short = playout.new_utterance("כן")
    playout.push_frames(short, [FRAME] * 2)
    playout.end_utterance(short)
    await asyncio.sleep(2 * FRAME_S + 0.05)
    long = playout.new_utterance("שלום לך")
    playout.push_frames(long, [FRAME] * 50)
    playout.end_utterance(long)
    await asyncio.sleep(0.01)
    assert playout.expire_marks() == [short]
    assert short.heard and not long.heard
    assert playout.speaking


async def test_counters_and_times_follow_the_frames_sent() -> None:
    """On a stepped clock: the first frame's time, each sentence's start of play (the playout
    clock), first send and frames out are those of the frames handed to the socket."""
    wire = Wire()
    clock_s = [100.0]
    playout = Playout(wire.media, wire.mark, wire.clear, clock=lambda: clock_s[0])
    first = playout.new_utterance("א")
    second = playout.new_utterance("ב")
    playout.push_frames(first, [FRAME] * 3)
    playout.end_utterance(first)
    playout.push_frames(second, [FRAME] * 20)
    playout.end_utterance(second)
    task = asyncio.create_task(playout.run())
    await asyncio.sleep(0)
    lead = round(PLAYOUT_LEAD_S / FRAME_S)
    assert wire.sent == ["media"] * 3 + [f"mark:{first.mark}"] + ["media"] * (lead - 3)
    assert playout.first_frame_at == 100.0
    assert (first.frames_sent, first.frames_out, first.first_sent_at) == (3, 3, 100.0)
    assert first.play_start_at == 100.0
    assert second.play_start_at is not None
    assert abs(second.play_start_at - (100.0 + 3 * FRAME_S)) < 1e-9
    assert (second.frames_sent, second.frames_out) == (20, lead - 3)
    clock_s[0] = 101.0  # far behind: the next wake is an underrun inside the sentence
    await asyncio.sleep(PLAYOUT_LEAD_S - 0.1 + 0.05)  # it sleeps until 100 ms are left
    assert second.frames_out == 2 * lead - 3 and playout.underruns == 1
    clock_s[0] = 102.0
    await asyncio.sleep(PLAYOUT_LEAD_S - 0.1 + 0.05)
    assert second.frames_out == 20 and wire.sent[-1] == f"mark:{second.mark}"
    assert playout.underruns == 2
    assert playout.first_frame_at == 100.0 and first.first_sent_at == 100.0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_clear_during_a_send_stops_the_batch() -> None:
    """A barge-in that clears while a frame is in the socket: nothing more of the batch goes
    out, and the next sentence goes out at once."""
    sent: list[str] = []
    gate = asyncio.Event()

    async def media(payload: bytes) -> None:
        sent.append("media")
        if len(sent) == 2:
            await gate.wait()

    async def mark(name: str) -> None:
        sent.append(f"mark:{name}")

    async def clear() -> None:
        sent.append("clear")

    playout = Playout(media, mark, clear)
    task = asyncio.create_task(playout.run())
    cut = playout.new_utterance("נחתך")
    playout.push_frames(cut, [FRAME] * 30)
    playout.end_utterance(cut)
    await asyncio.sleep(0.01)
    assert sent == ["media", "media"]
    assert await playout.clear() == [cut]
    gate.set()
    await asyncio.sleep(0.01)
    assert sent == ["media", "media", "clear"]
    assert not playout.speaking
    after = playout.new_utterance("הבא")
    playout.push_frames(after, [FRAME] * 2)
    playout.end_utterance(after)
    await asyncio.sleep(0.01)
    assert sent[3:] == ["media", "media", f"mark:{after.mark}"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_frames_of_interleaved_sentences_count_to_their_own() -> None:
    """Two sentences whose frames are pushed in turns (a stream that resumes one sentence
    after starting the next): each frame is counted to the sentence it was pushed for."""
    wire = Wire()
    playout = Playout(wire.media, wire.mark, wire.clear)
    first = playout.new_utterance("ראשון")
    second = playout.new_utterance("שני")
    playout.push_frames(first, [FRAME] * 2)
    playout.push_frames(second, [FRAME] * 3)
    playout.push_frames(first, [FRAME] * 1)
    playout.push_frames(second, [])
    playout.end_utterance(first)
    playout.end_utterance(second)
    task = asyncio.create_task(playout.run())
    await asyncio.sleep(0.01)
    assert wire.sent == ["media"] * 6 + [f"mark:{first.mark}", f"mark:{second.mark}"]
    assert (first.frames_sent, first.frames_out) == (3, 3)
    assert (second.frames_sent, second.frames_out) == (3, 3)
    assert first.play_start_at is not None and second.play_start_at is not None
    assert second.play_start_at - first.play_start_at == pytest.approx(2 * FRAME_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_queued_frames_add_nothing_for_the_garbage_collector() -> None:
    """A sentence's queued frames stay bare bytes: queueing 500 of them adds no object the
    collector tracks (one object per frame made full collections walk ~25,000 more at
    200 calls)."""
    wire = Wire()
    playout = Playout(wire.media, wire.mark, wire.clear)
    utterance = playout.new_utterance("משפט ארוך")
    frames = [bytes([n % 256]) * 160 for n in range(500)]
    gc.collect()
    before = len(gc.get_objects())
    playout.push_frames(utterance, frames)
    playout.end_utterance(utterance)
    assert len(gc.get_objects()) - before < 10


async def test_pump_sends_what_is_due_from_the_callers_task() -> None:
    """pump() sends the lead's worth of a reply at once, in the caller's task, before the
    playout task has run at all; the task then finds nothing due (no frame twice)."""
    wire = Wire()
    clock_s = [100.0]
    playout = Playout(wire.media, wire.mark, wire.clear, clock=lambda: clock_s[0])
    utterance = playout.new_utterance("שלום, מדברת נועה")
    playout.push_frames(utterance, [FRAME] * 30)
    playout.end_utterance(utterance)
    await playout.pump()
    lead = round(PLAYOUT_LEAD_S / FRAME_S)
    assert wire.sent == ["media"] * lead
    assert utterance.frames_out == lead and utterance.first_sent_at == 100.0
    task = asyncio.create_task(playout.run())
    await asyncio.sleep(0.01)
    assert wire.sent == ["media"] * lead  # the lead is full: the task waits to refill
    clock_s[0] = 100.0 + lead * FRAME_S - 0.001  # the first lead has played: the next is due
    await asyncio.sleep(PLAYOUT_LEAD_S - PLAYOUT_REFILL_S + 0.05)
    assert wire.sent == ["media"] * 2 * lead
    assert utterance.frames_out == 2 * lead and playout.underruns == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_one_sender_at_a_time() -> None:
    """A send that blocks (a slow socket) inside pump(): the playout task, started with
    frames queued, sends nothing until pump() is done, and a second pump() does nothing;
    every frame goes out once, in order."""
    sent: list[str] = []
    gate = asyncio.Event()

    async def media(payload: bytes) -> None:
        sent.append(payload.decode())
        if len(sent) == 2:
            await gate.wait()

    async def mark(name: str) -> None:
        sent.append(f"mark:{name}")

    async def clear() -> None:
        sent.append("clear")

    playout = Playout(media, mark, clear)
    utterance = playout.new_utterance("רגע אחד")
    frames = [f"{i:03d}".encode() for i in range(5)]
    playout.push_frames(utterance, frames)
    playout.end_utterance(utterance)
    pumping = asyncio.create_task(playout.pump())
    await asyncio.sleep(0.01)
    assert sent == ["000", "001"]
    task = asyncio.create_task(playout.run())  # frames are queued: it waits for pump()
    await asyncio.sleep(0.01)
    assert sent == ["000", "001"]
    await playout.pump()
    assert sent == ["000", "001"]
    gate.set()
    await pumping
    await asyncio.sleep(0.01)
    assert sent == ["000", "001", "002", "003", "004", f"mark:{utterance.mark}"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
