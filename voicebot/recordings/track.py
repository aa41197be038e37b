"""Two tracks of one call, built from the Media Stream as it flows (no second recording
charge from Twilio): the caller's inbound frames on the left, the agent's outbound
frames on the right, aligned on the stream's clock.

The caller's frames arrive one per 20 ms and are appended in order. The agent's frames
are sent paced to real time (the playout), so each is placed at the later of the track's
end and the stream's current position; a ``clear`` cuts what was sent but not yet played
(the track is truncated to now). Work per frame is one append; each track is bounded by
``max_s`` seconds of audio. :meth:`CallAudio.wav` (CPU: call it in a thread) mixes the
two into a 16-bit stereo WAV at 8 kHz.
"""

from __future__ import annotations

import io
import time
import wave
from array import array
from collections.abc import Callable
from typing import Final

from voicebot.audio.codec import PCM16_SAMPLE_BYTES, SAMPLE_RATE_HZ, ulaw_to_pcm16

ULAW_SILENCE: Final = b"\xff"
CHANNELS: Final = 2


class CallAudio:
    """The caller and agent tracks of one call, in μ-law (one byte per sample)."""

    def __init__(self, *, max_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_samples = int(max_s * SAMPLE_RATE_HZ)
        self.caller = bytearray()
        self.agent = bytearray()
        self._clock = clock
        self._t0: float | None = None

    def _now_samples(self) -> int:
        if self._t0 is None:
            self._t0 = self._clock()
        return int((self._clock() - self._t0) * SAMPLE_RATE_HZ)

    def start(self) -> None:
        """The stream started: position 0 of both tracks."""
        self._t0 = self._clock()

    def on_caller(self, frame: bytes) -> None:
        if self._t0 is None:
            self._t0 = self._clock()
        if len(self.caller) < self.max_samples:
            self.caller += frame

    def on_agent(self, frame: bytes) -> None:
        at = max(len(self.agent), self._now_samples())
        if at + len(frame) > self.max_samples:
            return
        if at > len(self.agent):
            self.agent += ULAW_SILENCE * (at - len(self.agent))
        self.agent += frame

    def on_clear(self) -> None:
        """Twilio drops the agent's audio not yet played: so does the track."""
        del self.agent[self._now_samples() :]

    @property
    def duration_s(self) -> float:
        return max(len(self.caller), len(self.agent)) / SAMPLE_RATE_HZ

    def wav(self) -> bytes:
        """Both tracks as one 16-bit stereo WAV (left: caller, right: agent)."""
        samples = max(len(self.caller), len(self.agent))
        left = array("h", ulaw_to_pcm16(bytes(self.caller.ljust(samples, ULAW_SILENCE))))
        right = array("h", ulaw_to_pcm16(bytes(self.agent.ljust(samples, ULAW_SILENCE))))
        both = array("h", bytes(samples * CHANNELS * PCM16_SAMPLE_BYTES))
        both[0::2] = left
        both[1::2] = right
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(CHANNELS)
            out.setsampwidth(PCM16_SAMPLE_BYTES)
            out.setframerate(SAMPLE_RATE_HZ)
            out.writeframes(both.tobytes())
        return buffer.getvalue()
