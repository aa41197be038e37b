"""The caller's side of the conversation: Hebrew phrases, synthesised once and encoded once.

espeak-ng renders each phrase (cached on disk by ``hebrew_audio``), line noise is
mixed in at the requested SNR, and the result is μ-law framed and base64-encoded
a single time, so every simulated call plays the same pre-built frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.hebrew_audio import mix_noise, synthesize_hebrew
from voicebot.testing.twilio_caller import EncodedSpeech, encode_speech

AUDIO_CACHE_DIR = Path(".cache/hebrew_audio")
NOISE_SEED = 7
DEFAULT_PHRASES = (
    "כן, אפשר לדבר עכשיו",
    "כן מעניין אותי",
    "יש לנו בערך עשרים עובדים",
    "מה המחיר של השירות?",
    "אפשר ביום שלישי בעשר בבוקר",
)


@dataclass(frozen=True, slots=True)
class CallerPhrase:
    """One phrase the caller can say: its text, clean PCM16 (8 kHz) and the frames sent."""

    text: str
    pcm16: bytes
    speech: EncodedSpeech


def prepare_phrase(
    text: str, *, noise_snr_db: float | None = None, cache_dir: Path = AUDIO_CACHE_DIR
) -> CallerPhrase:
    """Synthesise ``text`` (blocking: espeak-ng) and encode its frames."""
    clean = synthesize_hebrew(text, cache_dir=cache_dir)
    noisy = (
        clean if noise_snr_db is None else mix_noise(clean, snr_db=noise_snr_db, seed=NOISE_SEED)
    )
    return CallerPhrase(text=text, pcm16=clean, speech=encode_speech(pcm16_to_ulaw(noisy)))


async def prepare_phrases(
    texts: Sequence[str], *, noise_snr_db: float | None = None, cache_dir: Path = AUDIO_CACHE_DIR
) -> list[CallerPhrase]:
    """Prepare every phrase in a worker thread (espeak-ng and file I/O block)."""
    return [
        await asyncio.to_thread(
            prepare_phrase, text, noise_snr_db=noise_snr_db, cache_dir=cache_dir
        )
        for text in texts
    ]
