"""The stereo recording built from the stream: caller left, agent right, on one clock."""

from __future__ import annotations

import io
import wave
from array import array

from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.recordings.track import CallAudio

FRAME = 160  # 20 ms of μ-law at 8 kHz


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _tone(value: int) -> bytes:
    return pcm16_to_ulaw(array("h", [value] * FRAME).tobytes())


def _channels(wav_bytes: bytes) -> tuple[array[int], array[int]]:
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        samples = array("h", wav.readframes(wav.getnframes()))
    return samples[0::2], samples[1::2]


def test_caller_left_agent_right_aligned_on_the_stream_clock() -> None:
    """The agent's frame sent 1 s into the call lands 1 s into the right channel; the
    caller's frames fill the left channel in order."""
    clock = Clock()
    audio = CallAudio(max_s=60, clock=clock)
    audio.start()
    for _ in range(100):  # 2 s of caller speech
        audio.on_caller(_tone(8000))
    clock.now += 1.0
    audio.on_agent(_tone(-8000))
    left, right = _channels(audio.wav())
    assert len(left) == 100 * FRAME
    assert min(left) > 7000
    assert max(abs(s) for s in right[: 8000 - 1]) < 100  # silence before the agent spoke
    assert all(s < -7000 for s in right[8000 : 8000 + FRAME])


def test_clear_cuts_agent_audio_not_yet_played() -> None:
    """Audio queued ahead of the clock is dropped at ``clear`` (Twilio never plays it)."""
    clock = Clock()
    audio = CallAudio(max_s=60, clock=clock)
    audio.start()
    for _ in range(50):  # 1 s sent at once
        audio.on_agent(_tone(8000))
    clock.now += 0.4
    audio.on_clear()
    assert len(audio.agent) == int(0.4 * 8000)


def test_tracks_are_bounded() -> None:
    """Neither track grows past ``max_s`` seconds."""
    audio = CallAudio(max_s=1, clock=Clock())
    for _ in range(80):
        audio.on_caller(_tone(1))
        audio.on_agent(_tone(1))
    assert len(audio.caller) <= 8000 + FRAME and len(audio.agent) <= 8000
