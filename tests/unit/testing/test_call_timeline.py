"""CallTimeline: agent audio placed as the caller's playback plays it, caller speech at onset."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.call_timeline import CallTimeline
from voicebot.testing.twilio_caller import CallMetrics

RATE_HZ = 8000
START_S = 100.0
TONE = 8000  # PCM16 amplitude of the test signal


@dataclass
class SaidSpeech:
    onset_s: float | None = None


@dataclass
class FakeCall:
    """The part of SimulatedCall the timeline reads, driven by hand."""

    metrics: CallMetrics = field(default_factory=CallMetrics)
    agent_ulaw: bytearray = field(default_factory=bytearray)
    ended: bool = False
    said: list[SaidSpeech] = field(default_factory=list)

    def receive(self, duration_ms: int) -> None:
        self.agent_ulaw += pcm16_to_ulaw(_tone(duration_ms))
        self.metrics.agent_audio_ms += duration_ms

    def say(self, ulaw: bytes) -> SaidSpeech:
        speech = SaidSpeech()
        self.said.append(speech)
        return speech

    def agent_audio_wav(self) -> bytes:
        from voicebot.audio.codec import ulaw_to_pcm16

        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE_HZ)
            wav.writeframes(ulaw_to_pcm16(bytes(self.agent_ulaw)))
        return buffer.getvalue()


def _tone(duration_ms: int) -> bytes:
    samples = np.full(RATE_HZ * duration_ms // 1000, TONE, dtype="<i2")
    return samples.tobytes()


def _loud_spans_ms(channel: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) in ms of each run of non-silent samples."""
    loud = np.abs(channel.astype(np.int32)) > TONE // 2
    edges = np.flatnonzero(np.diff(np.concatenate(([0], loud.astype(np.int8), [0]))))
    return [(int(a) * 1000 // RATE_HZ, int(b) * 1000 // RATE_HZ) for a, b in edges.reshape(-1, 2)]


def _timeline(call: FakeCall, now: list[float]) -> CallTimeline:
    fake: Any = call
    return CallTimeline(fake, clock=lambda: now[0])


def test_agent_audio_queues_behind_playback_and_caller_sits_at_its_onset() -> None:
    """A chunk that arrives while the previous one still plays follows it without overlap;
    caller speech lands at its onset, on the left channel only."""
    call = FakeCall()
    call.metrics.start_sent_s = START_S
    now = [START_S]
    timeline = _timeline(call, now)

    now[0] = START_S + 1.0
    call.receive(400)
    timeline.observe()
    now[0] = START_S + 1.1  # paced ahead: arrives before the first chunk has played
    call.receive(400)
    timeline.observe()
    speech = timeline.say(pcm16_to_ulaw(_tone(300)))
    assert isinstance(speech, SaidSpeech)
    speech.onset_s = START_S + 2.0

    with wave.open(io.BytesIO(timeline.stereo_wav()), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, RATE_HZ)
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert _loud_spans_ms(stereo[:, 1]) == [(1000, 1800)]
    assert _loud_spans_ms(stereo[:, 0]) == [(2000, 2300)]


def test_agent_is_quiet_only_after_its_last_mark_and_a_pause() -> None:
    """Done speaking means: the mark after the last audio came back and no audio since."""
    call = FakeCall()
    call.metrics.start_sent_s = START_S
    now = [START_S + 1.0]
    timeline = _timeline(call, now)
    call.receive(100)
    assert not timeline.agent_quiet(0.25)  # audio, no mark yet
    now[0] = START_S + 1.1
    call.metrics.marks.append((1100.0, "m1"))
    assert not timeline.agent_quiet(0.25)  # mark back, but the pause has not passed
    now[0] = START_S + 1.3
    assert timeline.agent_quiet(0.25)
    call.receive(200)  # more audio arrives: speaking again until its own mark returns
    assert not timeline.agent_quiet(0.25)
