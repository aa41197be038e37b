"""μ-law framer: exact 160-byte frames from any chunking; click-free sentence joins."""

from __future__ import annotations

import random

import numpy as np
import pytest

from voicebot.audio.codec import ULAW_SILENCE_BYTE, pcm16_to_ulaw
from voicebot.audio.framing import UlawFramer, fade_in, fade_out


def _sine(freq_hz: float, duration_s: float, amplitude: float = 16000.0) -> bytes:
    t = np.arange(int(8000 * duration_s)) / 8000
    return (amplitude * np.sin(2 * np.pi * freq_hz * t + 0.7)).astype("<i2").tobytes()


def test_random_chunk_sizes_give_exact_160_byte_frames() -> None:
    """Any chunking of the same audio yields the same exact 160-byte μ-law frames."""
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(32_000 + 200))  # 16 100 samples
    framer = UlawFramer()
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, 999)
        frames += framer.push(data[pos : pos + size])
        pos += size
    frames += framer.flush()
    assert all(len(f) == 160 for f in frames)
    assert len(frames) == 101  # 100 whole frames + 100 samples padded with 60
    expected = pcm16_to_ulaw(data)
    assert b"".join(frames)[: len(expected)] == expected
    assert b"".join(frames)[len(expected) :] == bytes([ULAW_SILENCE_BYTE]) * 60


def test_partial_frame_waits_for_more_audio() -> None:
    """Less than a frame returns nothing and stays pending."""
    framer = UlawFramer()
    assert framer.push(bytes(300)) == []
    assert framer.pending_bytes == 150
    assert len(framer.push(bytes(20))) == 1
    assert framer.pending_bytes == 0


def test_flush_without_padding_drops_the_partial_frame() -> None:
    """flush(pad=False) never emits a short frame."""
    framer = UlawFramer()
    framer.push(bytes(100))
    assert framer.flush(pad=False) == []
    assert framer.flush() == []


def test_reset_discards_buffered_audio() -> None:
    """reset() (barge-in) leaves nothing to flush."""
    framer = UlawFramer()
    framer.push(bytes(201))
    framer.reset()
    assert framer.flush() == []


def test_fades_start_and_end_near_zero() -> None:
    """fade_in starts from ~0, fade_out ends at ~0, and the middle is untouched."""
    data = _sine(440, 0.5)
    faded = np.frombuffer(fade_out(fade_in(data, 5), 5), dtype="<i2").astype(np.int32)
    original = np.frombuffer(data, dtype="<i2").astype(np.int32)
    assert abs(faded[0]) < 200
    assert abs(faded[-1]) < 200
    assert np.array_equal(faded[40:-40], original[40:-40])


def test_faded_sentences_join_without_a_jump() -> None:
    """Two sentences cut mid-wave join with a jump no larger than the signal's own steps."""
    first, second = _sine(440, 0.313), _sine(523, 0.27)[37 * 2 :]
    raw = np.frombuffer(first + second, dtype="<i2").astype(np.int32)
    faded = np.frombuffer(fade_out(first) + fade_in(second), dtype="<i2").astype(np.int32)
    own_max_step = max(
        np.max(np.abs(np.diff(np.frombuffer(part, dtype="<i2").astype(np.int32))))
        for part in (first, second)
    )
    assert np.max(np.abs(np.diff(raw))) > 1.5 * own_max_step  # the unfaded join clicks
    assert np.max(np.abs(np.diff(faded))) <= own_max_step


def test_fade_longer_than_audio_covers_all_of_it() -> None:
    """A fade longer than the clip ramps the whole clip and keeps its length."""
    data = _sine(440, 0.002)
    assert len(fade_in(data, 50)) == len(data)
    with pytest.raises(ValueError, match="fade_ms"):
        fade_out(data, -1)
