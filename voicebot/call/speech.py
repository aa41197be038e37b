"""Agent speech as ready-to-send μ-law frames: TTS stream → 8 kHz → faded → 160-byte frames."""

from __future__ import annotations

from collections.abc import AsyncIterator

from voicebot.audio.codec import SAMPLE_RATE_HZ
from voicebot.audio.framing import UlawFramer, fade_in, fade_out
from voicebot.audio.resample import Resampler
from voicebot.providers.base import TextToSpeech

SENTENCE_FADE_MS = 4


async def synthesize_frames(tts: TextToSpeech, text: str) -> AsyncIterator[list[bytes]]:
    """Yield batches of 20 ms μ-law frames as the TTS streams, click-free at both ends.

    One chunk is held back so the last one can be faded out before framing.
    """
    resampler = Resampler(tts.sample_rate_hz, SAMPLE_RATE_HZ)
    framer = UlawFramer()
    held: bytes | None = None
    first = True
    async for chunk in tts.synthesize(text):
        pcm = resampler.process(chunk)
        if not pcm:
            continue
        if first:
            pcm = fade_in(pcm, SENTENCE_FADE_MS)
            first = False
        if held is not None:
            frames = framer.push(held)
            if frames:
                yield frames
        held = pcm
    tail = (held or b"") + resampler.flush()
    if tail:
        frames = framer.push(fade_out(tail, SENTENCE_FADE_MS))
        if frames:
            yield frames
    last = framer.flush(pad=True)
    if last:
        yield last


async def synthesize_all(tts: TextToSpeech, text: str) -> bytes:
    """The whole phrase as concatenated μ-law frames (for the phrase cache)."""
    out = bytearray()
    async for frames in synthesize_frames(tts, text):
        for frame in frames:
            out += frame
    return bytes(out)
