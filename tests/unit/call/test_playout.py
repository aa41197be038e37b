"""Outbound playout: pacing lead, marks after sentences, clear, and honest underrun counting."""

from __future__ import annotations

import asyncio

from tests.unit.call.conftest import FRAME, Wire
from voicebot.call.playout import FRAME_S, PLAYOUT_LEAD_S, Playout


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
