"""μ-law ↔ PCM16 conversions and phone-audio constants."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.audio.codec import (
    FRAME_BYTES_PCM16,
    FRAME_BYTES_ULAW,
    ULAW_SILENCE_BYTE,
    pcm16_to_ulaw,
    ulaw_silence,
    ulaw_to_pcm16,
)


def test_frame_sizes_match_twilio_20ms_at_8khz() -> None:
    """A 20 ms frame is 160 μ-law bytes and 320 PCM16 bytes."""
    assert (FRAME_BYTES_ULAW, FRAME_BYTES_PCM16) == (160, 320)


def test_every_ulaw_byte_survives_decode_encode() -> None:
    """Decoding then encoding all 256 μ-law codes returns the same codes (bar −0 → +0)."""
    codes = bytes(range(256))
    again = pcm16_to_ulaw(ulaw_to_pcm16(codes))
    differing = [c for c, a in zip(codes, again, strict=True) if c != a]
    assert differing == [0x7F]  # negative zero encodes as positive zero (0xFF)
    assert again[0x7F] == ULAW_SILENCE_BYTE


def test_pcm_round_trip_error_is_within_mu_law_quantisation() -> None:
    """PCM16 → μ-law → PCM16 keeps each sample within ~3 % (the G.711 step size)."""
    samples = np.linspace(-30000, 30000, 4001).astype("<i2")
    back = np.frombuffer(ulaw_to_pcm16(pcm16_to_ulaw(samples.tobytes())), dtype="<i2")
    error = np.abs(back.astype(np.int32) - samples)
    assert np.all(error <= np.maximum(0.032 * np.abs(samples.astype(np.int32)), 8))


def test_silence_byte_decodes_to_zero() -> None:
    """μ-law 0xFF is digital silence and ulaw_silence has 8 bytes per ms."""
    silence = ulaw_silence(20)
    assert silence == bytes([0xFF]) * 160
    assert ulaw_to_pcm16(silence) == bytes(320)


def test_odd_length_pcm_is_rejected() -> None:
    """Encoding a torn sample raises instead of silently dropping a byte."""
    with pytest.raises(ValueError, match="even length"):
        pcm16_to_ulaw(b"\x00\x01\x02")
