"""RIFF/WAVE framing for PCM16 mono audio: build a WAV in memory, read a WAV header."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from voicebot.errors import ProviderError

WAV_HEADER_BYTES = 44
PCM_FORMAT_TAG = 1
PCM16_BITS_PER_SAMPLE = 16
PCM16_BYTES_PER_SAMPLE = 2
# Streaming writers (espeak-ng --stdout) leave sizes as placeholders; never trust them.
_MAX_HEADER_SCAN_BYTES = 4096


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What a WAV header says about the samples after it."""

    sample_rate_hz: int
    channels: int
    bits_per_sample: int
    data_offset: int


def pcm16_to_wav(pcm16: bytes, *, sample_rate_hz: int) -> bytes:
    """Wrap PCM16 mono little-endian samples in a canonical 44-byte WAV header."""
    byte_rate = sample_rate_hz * PCM16_BYTES_PER_SAMPLE
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm16),
        b"WAVE",
        b"fmt ",
        16,
        PCM_FORMAT_TAG,
        1,
        sample_rate_hz,
        byte_rate,
        PCM16_BYTES_PER_SAMPLE,
        PCM16_BITS_PER_SAMPLE,
        b"data",
        len(pcm16),
    )
    return header + pcm16


def parse_wav_header(data: bytes) -> WavFormat | None:
    """Parse a WAV header from the start of ``data``.

    Returns ``None`` while more bytes are needed; raises :class:`ProviderError` if the
    bytes are not a PCM WAV stream.
    """
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProviderError("audio is not a WAV stream")
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = offset + 8
        if chunk_id == b"data":
            if fmt is None:
                raise ProviderError("WAV stream has no fmt chunk before data")
            tag, channels, rate, bits = fmt
            if tag != PCM_FORMAT_TAG:
                raise ProviderError(f"WAV format tag {tag} is not PCM")
            return WavFormat(rate, channels, bits, body)
        if body + size > len(data):
            return None
        if chunk_id == b"fmt ":
            tag, channels, rate = struct.unpack_from("<HHI", data, body)
            (bits,) = struct.unpack_from("<H", data, body + 14)
            fmt = (tag, channels, rate, bits)
        offset = body + size + (size & 1)
    if len(data) > _MAX_HEADER_SCAN_BYTES:
        raise ProviderError("WAV header too long")
    return None
