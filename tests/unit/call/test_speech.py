"""Agent speech framing: each TTS chunk's frames go out as it arrives, the sentence's
audio is framed exactly, and both ends are faded (no clicks at sentence joins)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from voicebot.audio.codec import ulaw_to_pcm16
from voicebot.call.speech import synthesize_frames

RATE_HZ = 8000
CHUNK_SAMPLES = 800  # 100 ms per chunk
CHUNK_GAP_S = 0.2


class SlowTone:
    """A TTS that streams a loud 8 kHz tone in 100 ms chunks, 200 ms apart."""

    sample_rate_hz = RATE_HZ
    voice_id = "test:tone"

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.sent_at: list[float] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        t = np.arange(CHUNK_SAMPLES * self.chunks) / RATE_HZ
        tone = (np.sin(2 * np.pi * 440 * t) * 20000).astype("<i2").tobytes()
        for i in range(self.chunks):
            if i:
                await asyncio.sleep(CHUNK_GAP_S)
            self.sent_at.append(time.monotonic())
            yield tone[i * CHUNK_SAMPLES * 2 : (i + 1) * CHUNK_SAMPLES * 2]

    async def aclose(self) -> None:
        return None


async def test_first_frames_leave_before_the_next_chunk_arrives() -> None:
    """Frames of the first chunk are yielded at once, not held until the second comes."""
    tts = SlowTone(chunks=3)
    yielded_at: list[float] = []
    frames: list[bytes] = []
    async for batch in synthesize_frames(tts, "שלום"):  # type: ignore[arg-type]
        yielded_at.append(time.monotonic())
        frames.extend(batch)
    assert yielded_at[0] - tts.sent_at[0] < CHUNK_GAP_S / 4
    assert all(len(f) == 160 for f in frames)
    assert len(frames) == 3 * CHUNK_SAMPLES // 160


async def test_sentence_starts_and_ends_in_silence() -> None:
    """The first and last samples are faded to near zero, so sentences join without clicks."""
    pcm = b"".join(
        [f async for batch in synthesize_frames(SlowTone(chunks=2), "א") for f in batch]  # type: ignore[arg-type]
    )
    samples = np.frombuffer(ulaw_to_pcm16(pcm), dtype="<i2").astype(np.int32)
    assert abs(samples[0]) < 500 and abs(samples[-1]) < 500
    assert np.abs(samples).max() > 15000
