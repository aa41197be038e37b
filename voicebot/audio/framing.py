"""Outbound framing: PCM16 8 kHz chunks of any size → exact 20 ms μ-law frames.

This module owns :class:`UlawFramer`, which cuts the agent's audio into the
160-byte μ-law payloads Twilio plays, and the short fades applied at the edges of
each sentence so that sentences joined back to back (or cut by a barge-in) do not
click.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from voicebot.audio.codec import (
    FRAME_BYTES_ULAW,
    PCM16_SAMPLE_BYTES,
    SAMPLE_RATE_HZ,
    ULAW_SILENCE_BYTE,
    pcm16_to_ulaw,
)

DEFAULT_FADE_MS: Final = 5
"""Length of the raised-cosine ramp at each sentence edge: inaudible, removes the click."""


class UlawFramer:
    """Accumulates PCM16 8 kHz audio and emits whole 160-byte μ-law frames.

    Each :meth:`push` encodes the new audio once and slices complete frames off a
    single reusable buffer; the partial frame stays buffered until more audio
    arrives or :meth:`flush` is called. An odd trailing byte is carried over.
    """

    __slots__ = ("_buffer", "_carry")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._carry = b""

    @property
    def pending_bytes(self) -> int:
        """μ-law bytes buffered that do not yet make a whole frame."""
        return len(self._buffer)

    def push(self, pcm16: bytes) -> list[bytes]:
        """Add PCM16 audio; return the complete μ-law frames now available (maybe none)."""
        if self._carry:
            pcm16 = self._carry + pcm16
            self._carry = b""
        if len(pcm16) % PCM16_SAMPLE_BYTES:
            self._carry = pcm16[-1:]
            pcm16 = pcm16[:-1]
        buffer = self._buffer
        buffer += pcm16_to_ulaw(pcm16)
        whole = len(buffer) - len(buffer) % FRAME_BYTES_ULAW
        if not whole:
            return []
        step = FRAME_BYTES_ULAW
        frames = [bytes(buffer[i : i + step]) for i in range(0, whole, step)]
        del buffer[:whole]
        return frames

    def flush(self, *, pad: bool = True) -> list[bytes]:
        """Emit what is buffered: one last frame padded with μ-law silence, or nothing.

        With ``pad=False`` a partial frame is discarded (no frame shorter than 160
        bytes ever leaves the framer).
        """
        self._carry = b""
        if not self._buffer:
            return []
        tail = bytes(self._buffer)
        self._buffer.clear()
        if not pad:
            return []
        return [tail + bytes([ULAW_SILENCE_BYTE]) * (FRAME_BYTES_ULAW - len(tail))]

    def reset(self) -> None:
        """Drop buffered audio (barge-in)."""
        self._buffer.clear()
        self._carry = b""


def _ramp(n_samples: int) -> np.ndarray:
    """Raised-cosine gain rising from just above 0 to just below 1 over ``n_samples``."""
    phase = (np.arange(n_samples, dtype=np.float32) + 0.5) / n_samples
    return (0.5 - 0.5 * np.cos(np.pi * phase)).astype(np.float32)


def _apply_edge_gain(pcm16: bytes, fade_ms: int, sample_rate_hz: int, *, at_start: bool) -> bytes:
    if fade_ms < 0:
        raise ValueError(f"fade_ms must be >= 0, got {fade_ms}")
    samples = np.frombuffer(pcm16, dtype="<i2", count=len(pcm16) // PCM16_SAMPLE_BYTES)
    n = min(len(samples), sample_rate_hz * fade_ms // 1000)
    if n == 0:
        return pcm16
    out = samples.copy()
    gain = _ramp(n)
    if at_start:
        out[:n] = np.rint(out[:n] * gain).astype("<i2")
    else:
        out[-n:] = np.rint(out[-n:] * gain[::-1]).astype("<i2")
    return out.tobytes() + pcm16[len(samples) * PCM16_SAMPLE_BYTES :]


def fade_in(
    pcm16: bytes, fade_ms: int = DEFAULT_FADE_MS, *, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> bytes:
    """Return ``pcm16`` with a raised-cosine ramp from silence over its first ``fade_ms``."""
    return _apply_edge_gain(pcm16, fade_ms, sample_rate_hz, at_start=True)


def fade_out(
    pcm16: bytes, fade_ms: int = DEFAULT_FADE_MS, *, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> bytes:
    """Return ``pcm16`` with a raised-cosine ramp to silence over its last ``fade_ms``."""
    return _apply_edge_gain(pcm16, fade_ms, sample_rate_hz, at_start=False)
