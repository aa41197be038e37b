"""Endpointer: speech start/end events on real Hebrew speech, noise, echo and barge-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.audio.endpointing import (
    DEFAULT_BARGE_IN_MIN_SPEECH_MS,
    DEFAULT_ENDPOINT_SILENCE_MS,
    PREROLL_MS,
    Endpointer,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voicebot.testing.hebrew_audio import (
    LabelledClip,
    active_power,
    labelled_clip,
    make_noise,
    mix_noise,
    pcm16_frames,
    scale,
    silence,
)

Event = SpeechStarted | SpeechPaused | SpeechResumed | SpeechEnded
UTTERANCE = "כן, אני יכול לדבר עכשיו"


def _run(
    endpointer: Endpointer, pcm16: bytes, *, agent_speaking: bool = False
) -> list[tuple[int, Event]]:
    """Feed whole frames; return (decision time in ms, event) pairs."""
    events: list[tuple[int, Event]] = []
    for frame in pcm16_frames(pcm16):
        event = endpointer.process(frame, agent_speaking=agent_speaking)
        if event is not None:
            events.append((endpointer.stream_ms, event))
    return events


@pytest.fixture
def clip(hebrew_cache_dir: Path) -> LabelledClip:
    """One Hebrew utterance with 1 s of silence before and 1.5 s after."""
    return labelled_clip([UTTERANCE], lead_ms=1000, trail_ms=1500, cache_dir=hebrew_cache_dir)


def test_silence_gives_no_event() -> None:
    """Five seconds of digital silence produce no event."""
    assert _run(Endpointer(), silence(5000)) == []


def test_utterance_gives_start_then_end_at_true_edges(clip: LabelledClip) -> None:
    """A clean utterance yields SpeechStarted near its onset and SpeechEnded near its true end."""
    events = _run(Endpointer(), clip.pcm16)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    (started_at, started), (ended_at, ended) = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert abs(started.onset_ms - clip.speech_start_ms) <= 40
    assert started_at - started.onset_ms <= 120  # confirmed within start_min_speech_ms + 2 frames
    assert abs(ended.end_ms - clip.speech_end_ms) <= 60
    assert ended_at == ended.end_ms + DEFAULT_ENDPOINT_SILENCE_MS
    assert ended.onset_ms == started.onset_ms
    expected_audio_ms = ended.end_ms - ended.onset_ms + PREROLL_MS + 200
    assert len(ended.audio) == expected_audio_ms * 16  # 16 bytes per ms at 8 kHz PCM16


def test_utterance_in_20db_noise_is_found_without_false_starts(clip: LabelledClip) -> None:
    """With white noise at 20 dB SNR the utterance is found once and its end within 60 ms."""
    noisy = mix_noise(clip.pcm16, 20.0, seed=5)
    events = _run(Endpointer(), noisy)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert abs(ended.end_ms - clip.speech_end_ms) <= 60


@pytest.mark.parametrize("kind", ["white", "hum"])
def test_steady_noise_at_20db_snr_starts_nothing(clip: LabelledClip, kind: str) -> None:
    """Ten seconds of noise 20 dB below the speech level never start an utterance."""
    noise = mix_noise(
        silence(10_000), 20.0, seed=11, kind=kind, reference_power=active_power(clip.pcm16)
    )
    assert _run(Endpointer(), noise) == []


def test_mid_sentence_pause_does_not_end_the_turn(hebrew_cache_dir: Path) -> None:
    """Two phrases 300 ms apart give one utterance at the default endpoint silence."""
    split = labelled_clip(
        ["רגע", "תן לי לבדוק ביומן"],
        pause_ms=300,
        lead_ms=800,
        trail_ms=1500,
        cache_dir=hebrew_cache_dir,
    )
    events = _run(Endpointer(), split.pcm16)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert abs(ended.end_ms - split.speech_end_ms) <= 60


def test_short_endpoint_silence_splits_at_a_long_pause(hebrew_cache_dir: Path) -> None:
    """A 600 ms pause with endpoint_silence_ms=400 yields two utterances (the setting is used)."""
    split = labelled_clip(
        ["רגע", "תן לי לבדוק ביומן"],
        pause_ms=600,
        lead_ms=800,
        trail_ms=1000,
        cache_dir=hebrew_cache_dir,
    )
    events = _run(Endpointer(endpoint_silence_ms=400), split.pcm16)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded] * 2


def test_echo_of_agent_voice_does_not_barge_in(clip: LabelledClip) -> None:
    """The agent's own voice returning 25 dB down (with line noise) never triggers a barge-in."""
    echo = scale(clip.pcm16, -25.0)
    noisy_echo = mix_noise(echo, 10.0, seed=2, reference_power=active_power(echo))
    assert _run(Endpointer(), noisy_echo, agent_speaking=True) == []
    # The same echo on an idle line is heard as speech: the barge-in gate is what rejects it.
    assert [type(e) for _, e in _run(Endpointer(), echo)] == [SpeechStarted, SpeechEnded]


def test_cough_like_burst_does_not_barge_in() -> None:
    """A loud 100 ms burst while the agent talks is shorter than barge_in_min_speech_ms."""
    burst = np.clip(np.rint(make_noise(800, 6000.0, seed=4)), -32768, 32767).astype("<i2")
    audio = silence(1000) + burst.tobytes() + silence(1000)
    assert _run(Endpointer(), audio, agent_speaking=True) == []


def test_caller_speech_over_the_agent_barges_in(clip: LabelledClip) -> None:
    """Normal-level speech over the agent starts a turn after the barge-in minimum."""
    events = _run(Endpointer(), clip.pcm16, agent_speaking=True)
    assert events, "no barge-in on loud caller speech"
    decided_ms, started = events[0]
    assert isinstance(started, SpeechStarted)
    assert abs(started.onset_ms - clip.speech_start_ms) <= 60
    assert decided_ms - started.onset_ms >= DEFAULT_BARGE_IN_MIN_SPEECH_MS


def test_wrong_length_frame_is_ignored_without_advancing_time() -> None:
    """A torn frame returns None and does not count as 20 ms of stream time."""
    endpointer = Endpointer()
    endpointer.process(bytes(320))
    assert endpointer.process(bytes(319)) is None
    assert endpointer.process(b"") is None
    assert endpointer.stream_ms == 20


def test_max_utterance_length_forces_an_end(clip: LabelledClip) -> None:
    """An utterance longer than max_utterance_ms is ended at that length."""
    events = _run(Endpointer(max_utterance_ms=1000), clip.pcm16)
    ended = [e for _, e in events if isinstance(e, SpeechEnded)]
    assert ended, "no SpeechEnded"
    assert ended[0].end_ms - ended[0].onset_ms <= 1000


def test_reset_restarts_stream_time(clip: LabelledClip) -> None:
    """After reset() the same audio gives the same events at the same stream times."""
    endpointer = Endpointer()
    first = _run(endpointer, clip.pcm16)
    endpointer.reset()
    assert endpointer.stream_ms == 0
    assert _run(endpointer, clip.pcm16) == first


def test_pause_inside_utterance_reports_paused_then_resumed(hebrew_cache_dir: Path) -> None:
    """A 500 ms pause inside an utterance yields SpeechPaused then SpeechResumed, and one
    SpeechEnded after the whole utterance (the pause does not end the turn)."""
    clip = labelled_clip(
        ["אממ", "אני חושב שכן"],
        lead_ms=1000,
        trail_ms=1500,
        pause_ms=500,
        cache_dir=hebrew_cache_dir,
    )
    endpointer = Endpointer(speculate_silence_ms=200)
    events = _run(endpointer, clip.pcm16)
    kinds = [type(e) for _, e in events]
    assert kinds[0] is SpeechStarted
    assert kinds[-1] is SpeechEnded
    assert SpeechPaused in kinds and SpeechResumed in kinds
    assert kinds.index(SpeechPaused) < kinds.index(SpeechResumed)
    assert kinds.count(SpeechEnded) == 1
    ended = events[-1][1]
    assert isinstance(ended, SpeechEnded)
    assert abs(ended.end_ms - clip.speech_end_ms) < 200


def test_paused_audio_is_the_utterance_so_far(clip: LabelledClip) -> None:
    """SpeechPaused at the end of an utterance carries the same audio and end as the
    SpeechEnded that follows it, ``speculate_silence_ms`` after the last voiced frame."""
    events = _run(Endpointer(speculate_silence_ms=200), clip.pcm16)
    paused = [(at, e) for at, e in events if isinstance(e, SpeechPaused)]
    ended = [e for _, e in events if isinstance(e, SpeechEnded)]
    assert len(ended) == 1
    at, last_pause = paused[-1]
    assert last_pause.end_ms == ended[0].end_ms
    assert last_pause.audio == ended[0].audio
    assert at - last_pause.end_ms == 200  # decided once 200 ms of silence were heard


def test_no_pause_events_without_speculation(clip: LabelledClip) -> None:
    """speculate_silence_ms=0 (the default) reports starts and ends only."""
    kinds = [type(e) for _, e in _run(Endpointer(), clip.pcm16)]
    assert kinds == [SpeechStarted, SpeechEnded]


def test_turn_silence_set_from_words_ends_sooner(clip: LabelledClip) -> None:
    """set_turn_silence_ms at the pause shortens the end-of-turn silence of this utterance
    only; the next utterance uses the default again."""
    endpointer = Endpointer(endpoint_silence_ms=700, speculate_silence_ms=200)
    ends: list[int] = []
    for round_ in range(2):
        for frame in pcm16_frames(clip.pcm16):
            event = endpointer.process(frame)
            if isinstance(event, SpeechPaused) and round_ == 0:
                endpointer.set_turn_silence_ms(300)
            if isinstance(event, SpeechEnded):
                ends.append(endpointer.stream_ms - event.end_ms)
    assert ends[0] <= 300 + 20
    assert ends[1] >= 700
