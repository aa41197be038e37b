"""Agent speech as ready-to-send μ-law frames: TTS stream → 8 kHz → faded → 160-byte frames."""

from __future__ import annotations

from collections.abc import AsyncIterator

from voicebot.audio.codec import SAMPLE_RATE_HZ
from voicebot.audio.framing import UlawFramer, fade_in, fade_out
from voicebot.audio.resample import Resampler
from voicebot.providers.base import TextToSpeech

SENTENCE_FADE_MS = 4
FADE_BYTES = SAMPLE_RATE_HZ * SENTENCE_FADE_MS // 1000 * 2  # PCM16 at 8 kHz


async def synthesize_frames(tts: TextToSpeech, text: str) -> AsyncIterator[list[bytes]]:
    """Yield batches of 20 ms μ-law frames as the TTS streams, click-free at both ends.

    Only the last ``SENTENCE_FADE_MS`` of audio is held back (to fade it out at the end),
    so each chunk's frames go out the moment the chunk arrives.
    """
    resampler = Resampler(tts.sample_rate_hz, SAMPLE_RATE_HZ)
    framer = UlawFramer()
    held = b""
    first = True
    async for chunk in tts.synthesize(text):
        pcm = resampler.process(chunk)
        if not pcm:
            continue
        if first:
            pcm = fade_in(pcm, SENTENCE_FADE_MS)
            first = False
        pcm = held + pcm
        cut = max(0, len(pcm) - FADE_BYTES)
        held = pcm[cut:]
        frames = framer.push(pcm[:cut])
        if frames:
            yield frames
    tail = held + resampler.flush()
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
