"""``voicebot say``: hear a script line before a campaign does.

Owns :func:`say`: the spoken form the TTS receives (:func:`~voicebot.brain.speech_text.to_spoken`,
exactly what a call sends), and optionally that text synthesized by the TTS engine a call
uses (espeak-ng unless ``TTS_*`` points at OpenAI) through the call's own audio path
(resampled to 8 kHz, μ-law framed), written as a WAV file of what the caller would hear.
"""

from __future__ import annotations

import wave
from pathlib import Path

from voicebot.audio.codec import SAMPLE_RATE_HZ, ulaw_to_pcm16
from voicebot.brain.speech_text import to_spoken
from voicebot.call.speech import synthesize_all
from voicebot.config import Settings
from voicebot.errors import ProviderError
from voicebot.providers.factory import build_providers

PCM16_SAMPLE_BYTES = 2


async def say(settings: Settings, text: str, *, wav_path: Path | None = None) -> str:
    """The spoken form of ``text``; with ``wav_path``, also its audio as a call plays it.

    Raises :class:`~voicebot.errors.ProviderError` when the TTS engine is unavailable or
    fails, and ``OSError`` when the file cannot be written.
    """
    spoken = to_spoken(text)
    if wav_path is None:
        return spoken
    providers = build_providers(settings)
    try:
        if not providers.tts_available:
            raise ProviderError("no TTS engine: install espeak-ng or configure TTS_*")
        ulaw = await synthesize_all(providers.tts, spoken)
    finally:
        await providers.aclose()
    with wav_path.open("wb") as file, wave.open(file, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(PCM16_SAMPLE_BYTES)
        wav.setframerate(SAMPLE_RATE_HZ)
        wav.writeframes(ulaw_to_pcm16(ulaw))
    return spoken
