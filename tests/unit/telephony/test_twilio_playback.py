"""Twilio's playback model: marks reached in order, clear, underruns, at 20 ms per tick."""

from __future__ import annotations

from voicebot.telephony.twilio_playback import PlaybackBuffer

FRAME = b"\x11" * 160


def test_mark_is_reached_after_the_audio_before_it_played() -> None:
    """A mark after two frames is reported on the third tick, once both have played."""
    buffer = PlaybackBuffer()
    buffer.add_audio(FRAME * 2)
    assert buffer.add_mark("s1") is False
    assert buffer.tick() == (FRAME, [])
    assert buffer.tick() == (FRAME, [])
    assert buffer.tick() == (b"", ["s1"])
    assert buffer.underruns == 0


def test_mark_with_nothing_queued_is_reached_at_once() -> None:
    """With nothing playing or queued, a mark is echoed immediately."""
    buffer = PlaybackBuffer()
    assert buffer.add_mark("now") is True


def test_mark_during_the_last_playing_frame_waits_for_the_next_tick() -> None:
    """A frame still playing delays the mark to the end of that frame."""
    buffer = PlaybackBuffer()
    buffer.add_audio(FRAME)
    buffer.tick()
    assert buffer.add_mark("end") is False
    assert buffer.tick() == (b"", ["end"])


def test_odd_sized_payloads_are_played_in_160_byte_frames() -> None:
    """Payloads of any size are re-cut into 20 ms frames without loss."""
    buffer = PlaybackBuffer()
    for size in (100, 30, 250):
        buffer.add_audio(b"\x22" * size)
    assert buffer.queued_ms == 47.5
    played = [len(buffer.tick()[0]) for _ in range(3)]
    assert played == [160, 160, 60]


def test_clear_drops_audio_and_returns_pending_marks() -> None:
    """clear empties the queue and hands back every pending mark, in order."""
    buffer = PlaybackBuffer()
    buffer.add_audio(FRAME * 10)
    buffer.add_mark("a")
    buffer.add_audio(FRAME)
    buffer.add_mark("b")
    buffer.tick()
    assert buffer.clear() == ["a", "b"]
    assert buffer.queued_ms == 0
    buffer.tick()
    assert not buffer.busy
    assert buffer.underruns == 0


def test_running_dry_mid_sentence_is_one_underrun() -> None:
    """Audio stopping before its mark counts one underrun per dry spell, not per tick."""
    buffer = PlaybackBuffer()
    buffer.add_audio(FRAME)
    buffer.tick()
    buffer.tick()
    buffer.tick()
    assert buffer.underruns == 1
    buffer.add_audio(FRAME)
    buffer.add_mark("s1")
    buffer.tick()
    buffer.tick()
    buffer.tick()
    assert buffer.underruns == 1
