"""Both sides of a simulated call on one clock, as heard on the line, for a stereo WAV.

Owns :class:`CallTimeline`: it follows a :class:`~voicebot.testing.twilio_caller.SimulatedCall`
through its public API only (``metrics``, ``wait_until``, ``agent_audio_wav``), notes
when each piece of agent audio arrived, and places it where the caller's real-time
playback would play it (never before the previous piece ends). Caller speech goes
through :meth:`CallTimeline.say` and is placed at the instant its first frame went
out. The result is a 16-bit 8 kHz stereo WAV: caller on the left, agent on the right.

A ``clear`` (barge-in) drops queued agent audio on a real line; the timeline does not
model that, so it is exact for calls without barge-in (such as the demo's).
"""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Callable

import numpy as np

from voicebot.audio.codec import PCM16_SAMPLE_BYTES, SAMPLE_RATE_HZ, ulaw_to_pcm16
from voicebot.testing.twilio_caller import SimulatedCall, Utterance

STEREO_CHANNELS = 2
CALLER_CHANNEL = 0
AGENT_CHANNEL = 1
SAMPLES_PER_MS = SAMPLE_RATE_HZ // 1000
FOLLOW_TIMEOUT_S = 600.0
"""Upper bound on one followed call; the demo's calls last well under a minute."""


class CallTimeline:
    """Records when agent audio arrived and builds the time-aligned stereo recording."""

    def __init__(self, call: SimulatedCall, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._call = call
        self._clock = clock
        self._arrivals: list[tuple[float, float]] = []
        """(monotonic s, total agent audio ms received by then), one entry per growth."""
        self._received_ms = 0.0
        self._said: list[tuple[Utterance, bytes]] = []
        self.last_agent_audio_at: float | None = None

    def say(self, ulaw: bytes) -> Utterance:
        """Caller speech (μ-law 8 kHz) through :meth:`SimulatedCall.say`, kept for the recording."""
        utterance = self._call.say(ulaw)
        self._said.append((utterance, ulaw))
        return utterance

    def observe(self) -> bool:
        """Note new agent audio; a ``wait_until`` predicate that is true once the call ended."""
        received_ms = self._call.metrics.agent_audio_ms
        if received_ms > self._received_ms:
            now = self._clock()
            self._arrivals.append((now, received_ms))
            self._received_ms = received_ms
            self.last_agent_audio_at = now
        return self._call.ended

    async def follow(self) -> None:
        """Observe after every message and frame until the call ends (or the task is cancelled)."""
        await self._call.wait_until(self.observe, FOLLOW_TIMEOUT_S)

    def agent_quiet(self, quiet_s: float) -> bool:
        """The agent said something, all of it has been played (its last mark came back after
        its last audio arrived) and no audio has arrived for ``quiet_s``."""
        self.observe()
        last = self.last_agent_audio_at
        start = self._call.metrics.start_sent_s
        marks = self._call.metrics.marks
        if last is None or start is None or not marks:
            return False
        last_mark_at = start + marks[-1][0] / 1000
        return last_mark_at >= last and self._clock() - last >= quiet_s

    def stereo_pcm16(self) -> bytes:
        """Interleaved 16-bit stereo at 8 kHz: caller left, agent right, from the stream start."""
        start = self._call.metrics.start_sent_s
        if start is None:
            return b""
        self.observe()
        caller = self._caller_track(start)
        agent = self._agent_track(start)
        length = max(caller.size, agent.size)
        stereo = np.zeros((length, STEREO_CHANNELS), dtype="<i2")
        stereo[: caller.size, CALLER_CHANNEL] = caller
        stereo[: agent.size, AGENT_CHANNEL] = agent
        return stereo.tobytes()

    def stereo_wav(self) -> bytes:
        """:meth:`stereo_pcm16` as a WAV file."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(STEREO_CHANNELS)
            wav.setsampwidth(PCM16_SAMPLE_BYTES)
            wav.setframerate(SAMPLE_RATE_HZ)
            wav.writeframes(self.stereo_pcm16())
        return buffer.getvalue()

    def _caller_track(self, start: float) -> np.ndarray:
        pieces: list[tuple[int, np.ndarray]] = []
        for utterance, ulaw in self._said:
            if utterance.onset_s is None:
                continue
            samples = np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2")
            pieces.append((_offset(utterance.onset_s - start), samples))
        return _place(pieces)

    def _agent_track(self, start: float) -> np.ndarray:
        with wave.open(io.BytesIO(self._call.agent_audio_wav()), "rb") as wav:
            agent = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        pieces: list[tuple[int, np.ndarray]] = []
        cursor = 0
        taken = 0
        for arrived_at, total_ms in self._arrivals:
            end = min(agent.size, round(total_ms * SAMPLES_PER_MS))
            if end <= taken:
                continue
            at = max(_offset(arrived_at - start), cursor)
            pieces.append((at, agent[taken:end]))
            cursor = at + (end - taken)
            taken = end
        if taken < agent.size:
            pieces.append((cursor, agent[taken:]))
        return _place(pieces)


def _offset(seconds: float) -> int:
    return max(0, round(seconds * SAMPLE_RATE_HZ))


def _place(pieces: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """One mono track with each (sample offset, samples) piece mixed in at its place."""
    length = max((at + samples.size for at, samples in pieces), default=0)
    track = np.zeros(length, dtype=np.int32)
    for at, samples in pieces:
        track[at : at + samples.size] += samples
    clipped: np.ndarray = np.clip(track, -32768, 32767).astype("<i2")
    return clipped
