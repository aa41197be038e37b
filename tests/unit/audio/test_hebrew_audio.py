"""Hebrew test-speech helpers: espeak-ng synthesis, caching, noise mixing, framing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.testing.hebrew_audio import (
    active_power,
    duration_ms,
    labelled_clip,
    mix_noise,
    silence,
    synthesize_hebrew,
    to_ulaw_frames,
    trim_silence,
)


def test_synthesis_gives_trimmed_8khz_speech_and_caches_it(
    hebrew_cache_dir: Path, tmp_path: Path
) -> None:
    """espeak-ng output is 8 kHz PCM16 of plausible length, starts on sound, and is cached."""
    text = "תוריד אותי מהרשימה בבקשה"
    pcm16 = synthesize_hebrew(text, cache_dir=tmp_path)
    assert 1000 < duration_ms(pcm16) < 4000
    assert trim_silence(pcm16) == pcm16
    cached = list(tmp_path.glob("tts-*.pcm"))
    assert len(cached) == 1
    assert cached[0].read_bytes() == pcm16
    assert synthesize_hebrew(text, cache_dir=tmp_path) == pcm16


def test_synthesis_uses_espeak_for_each_text(hebrew_cache_dir: Path) -> None:
    """Different texts give different audio; the longer sentence lasts longer."""
    short = synthesize_hebrew("כן", cache_dir=hebrew_cache_dir)
    long = synthesize_hebrew("מחר בעשר בבוקר מתאים לי", cache_dir=hebrew_cache_dir)
    assert duration_ms(long) > 2 * duration_ms(short)


@pytest.mark.parametrize("kind", ["white", "hum"])
@pytest.mark.parametrize("snr_db", [20.0, 5.0])
def test_mix_noise_hits_the_requested_snr(snr_db: float, kind: str) -> None:
    """The added noise power is speech power / 10^(SNR/10) within 0.2 dB, reproducibly."""
    t = np.arange(16000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 700 * t)).astype("<i2").tobytes()
    mixed = mix_noise(tone, snr_db, seed=3, kind=kind)  # type: ignore[arg-type]
    noise = np.frombuffer(mixed, "<i2").astype(np.float64) - np.frombuffer(tone, "<i2")
    measured = 10 * np.log10(active_power(tone) / np.mean(noise**2))
    assert measured == pytest.approx(snr_db, abs=0.2)
    assert mix_noise(tone, snr_db, seed=3, kind=kind) == mixed  # type: ignore[arg-type]


def test_labelled_clip_places_speech_after_the_lead(hebrew_cache_dir: Path) -> None:
    """Ground-truth edges equal the lead silence and lead + speech length."""
    clip = labelled_clip(
        ["כן", "בטח"], pause_ms=300, lead_ms=500, trail_ms=700, cache_dir=hebrew_cache_dir
    )
    assert clip.speech_start_ms == 500
    assert duration_ms(clip.pcm16) == pytest.approx(clip.speech_end_ms + 700)
    assert clip.pcm16[:8000] == bytes(8000)


def test_to_ulaw_frames_pads_the_last_frame() -> None:
    """30 ms of audio becomes two 160-byte μ-law frames, the second half silence."""
    frames = to_ulaw_frames(silence(30))
    assert [len(f) for f in frames] == [160, 160]
    assert frames[1] == bytes([0xFF]) * 160
