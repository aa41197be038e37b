"""G.711 μ-law ↔ 16-bit PCM for the Twilio Media Streams wire format.

This module owns the phone-side audio constants (8 kHz, 20 ms frames, 160 μ-law
bytes per frame) and the sample-format conversions between μ-law and signed
16-bit little-endian PCM. The conversions are done by ``audioop`` (C code in the
standard library up to 3.12, provided under the same name by ``audioop-lts`` on
3.13+), so a frame costs about a microsecond.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # audioop is deprecated in 3.11/3.12 and replaced by audioop-lts on 3.13+.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SAMPLE_RATE_HZ = 8000
"""Twilio Media Streams carry 8 kHz mono audio in both directions."""
FRAME_MS = 20
"""Twilio sends one ``media`` event per 20 ms of audio."""
SAMPLES_PER_FRAME = SAMPLE_RATE_HZ * FRAME_MS // 1000
PCM16_SAMPLE_BYTES = 2
FRAME_BYTES_ULAW = SAMPLES_PER_FRAME  # one byte per μ-law sample: 160
FRAME_BYTES_PCM16 = SAMPLES_PER_FRAME * PCM16_SAMPLE_BYTES  # 320
ULAW_SILENCE_BYTE = 0xFF
"""μ-law encoding of digital zero (positive zero)."""
ULAW_SILENT_FRAME = bytes([ULAW_SILENCE_BYTE]) * FRAME_BYTES_ULAW
PCM16_SILENT_FRAME = bytes(FRAME_BYTES_PCM16)


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode μ-law bytes to PCM16 little-endian; output is twice the input length."""
    return audioop.ulaw2lin(data, PCM16_SAMPLE_BYTES)


def pcm16_to_ulaw(data: bytes) -> bytes:
    """Encode PCM16 little-endian to μ-law; output is half the input length.

    Raises ``ValueError`` if ``data`` has an odd number of bytes (a torn sample).
    """
    if len(data) % PCM16_SAMPLE_BYTES:
        raise ValueError(f"PCM16 data must have an even length, got {len(data)} bytes")
    return audioop.lin2ulaw(data, PCM16_SAMPLE_BYTES)


def ulaw_silence(duration_ms: int) -> bytes:
    """Return μ-law silence lasting ``duration_ms`` at 8 kHz."""
    return bytes([ULAW_SILENCE_BYTE]) * (SAMPLE_RATE_HZ * duration_ms // 1000)


def pcm16_rms(data: bytes) -> int:
    """Root-mean-square amplitude of PCM16 samples (0..32768), computed in C."""
    return audioop.rms(data, PCM16_SAMPLE_BYTES)
