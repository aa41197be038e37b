"""μ-law 8 kHz mono audio in a WAV container, the format Twilio's ``<Play>`` plays fastest."""

from __future__ import annotations

import struct

from voicebot.audio.codec import SAMPLE_RATE_HZ

WAVE_FORMAT_MULAW = 7
ULAW_BITS_PER_SAMPLE = 8
FMT_CHUNK_BYTES = 18
"""A non-PCM ``fmt `` chunk carries a trailing ``cbSize`` (0 here)."""
FACT_CHUNK_BYTES = 4


def ulaw_to_wav(ulaw: bytes, *, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """Wrap μ-law mono samples in RIFF/WAVE with ``fmt `` (tag 7), ``fact`` and ``data``."""
    pad = b"\x00" if len(ulaw) % 2 else b""
    fmt = struct.pack(
        "<HHIIHHH",
        WAVE_FORMAT_MULAW,
        1,
        sample_rate_hz,
        sample_rate_hz,  # byte rate: one byte per sample, one channel
        1,  # block align
        ULAW_BITS_PER_SAMPLE,
        0,
    )
    chunks = (
        b"fmt "
        + struct.pack("<I", FMT_CHUNK_BYTES)
        + fmt
        + b"fact"
        + struct.pack("<II", FACT_CHUNK_BYTES, len(ulaw))
        + b"data"
        + struct.pack("<I", len(ulaw))
        + ulaw
        + pad
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
