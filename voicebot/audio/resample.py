"""Streaming sample-rate conversion of PCM16 mono audio to the phone rate.

This module owns :class:`Resampler`, which turns TTS output (24 kHz from OpenAI,
22.05 kHz from espeak-ng, or any other rate) into 8 kHz PCM16 chunk by chunk.
It is built on libsoxr, whose low-pass filter removes everything above the new
Nyquist frequency; ``audioop.ratecv`` does not, and folds sibilant energy above
4 kHz back into the 0–4 kHz phone band as hiss.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import soxr

from voicebot.audio.codec import PCM16_SAMPLE_BYTES, SAMPLE_RATE_HZ

RESAMPLER_QUALITY: Final = "HQ"
"""libsoxr quality preset: 20-bit precision, steep anti-alias filter, ~1 ms delay at 8 kHz."""


class Resampler:
    """Stateful PCM16 mono resampler from ``in_rate_hz`` to ``out_rate_hz``.

    Feed any number of bytes to :meth:`process` (odd byte counts are fine: the
    dangling byte is carried into the next call) and call :meth:`flush` at the end
    of a stream to drain the filter's delay line. Output chunks concatenate to the
    same signal as a one-shot conversion. When both rates are equal the audio
    passes through untouched.
    """

    __slots__ = ("_carry", "_in_rate_hz", "_out_rate_hz", "_stream")

    def __init__(self, in_rate_hz: int, out_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        if in_rate_hz <= 0 or out_rate_hz <= 0:
            raise ValueError(f"sample rates must be positive: {in_rate_hz} → {out_rate_hz}")
        self._in_rate_hz = in_rate_hz
        self._out_rate_hz = out_rate_hz
        self._carry = b""
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate_hz == out_rate_hz
            else soxr.ResampleStream(
                in_rate_hz, out_rate_hz, 1, dtype="int16", quality=RESAMPLER_QUALITY
            )
        )

    @property
    def in_rate_hz(self) -> int:
        """Input sample rate."""
        return self._in_rate_hz

    @property
    def out_rate_hz(self) -> int:
        """Output sample rate."""
        return self._out_rate_hz

    def process(self, pcm16: bytes) -> bytes:
        """Resample the next chunk; may return fewer bytes than expected (filter delay)."""
        if self._carry:
            pcm16 = self._carry + pcm16
            self._carry = b""
        if len(pcm16) % PCM16_SAMPLE_BYTES:
            self._carry = pcm16[-1:]
            pcm16 = pcm16[:-1]
        if self._stream is None or not pcm16:
            return pcm16
        samples = np.frombuffer(pcm16, dtype="<i2")
        return bytes(self._stream.resample_chunk(samples, last=False).astype("<i2", copy=False))

    def flush(self) -> bytes:
        """Drain the filter at end of stream and make the resampler ready for a new one.

        A dangling odd byte left from the last chunk is dropped: it is half a sample.
        """
        self._carry = b""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        self._stream.clear()
        return bytes(tail.astype("<i2", copy=False))

    def reset(self) -> None:
        """Discard buffered audio (e.g. on barge-in) without emitting it."""
        self._carry = b""
        if self._stream is not None:
            self._stream.clear()
