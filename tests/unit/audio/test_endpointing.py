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
    NoiseKind,
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


# Speech at the start of the stream: the noise floor is not known at its first frames.

FIRST_WORDS = "הלו, מי זה?"
"""What a caller says the moment they pick up."""
LINE_NOISE: list[tuple[NoiseKind, float | None]] = [
    ("white", None),
    ("white", 20.0),
    ("hum", 20.0),
    ("white", 10.0),
]
"""Clean, and the line noise of scripts/vad_eval.py where speech is reliably heard."""


def _on_line(pcm16: bytes, kind: NoiseKind, snr_db: float | None) -> bytes:
    return pcm16 if snr_db is None else mix_noise(pcm16, snr_db, seed=21, kind=kind)


def _from_first_frame(text: str, cache_dir: Path) -> LabelledClip:
    return labelled_clip([text], lead_ms=0, trail_ms=1500, cache_dir=cache_dir)


def _relative(events: list[tuple[int, Event]], lead_ms: float) -> list[tuple[str, float]]:
    """Event kinds with their onset (starts) or end (ends) in ms after ``lead_ms``."""
    return [
        (type(e).__name__, (e.onset_ms if isinstance(e, SpeechStarted) else e.end_ms) - lead_ms)
        for _, e in events
        if isinstance(e, SpeechStarted | SpeechEnded)
    ]


@pytest.mark.parametrize(("kind", "snr_db"), LINE_NOISE[:3])
def test_first_words_from_the_first_frame_are_heard_whole(
    hebrew_cache_dir: Path, kind: NoiseKind, snr_db: float | None
) -> None:
    """A caller saying "הלו, מי זה?" from the stream's first frame gives one utterance from
    that frame to its true end, whose audio holds all of the speech."""
    clip = _from_first_frame(FIRST_WORDS, hebrew_cache_dir)
    events = _run(Endpointer(), _on_line(clip.pcm16, kind, snr_db))
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert ended.onset_ms <= 20
    assert abs(ended.end_ms - clip.speech_end_ms) <= 60
    assert len(ended.audio) >= clip.speech_end_ms * 16  # 16 bytes per ms: none of it cut


@pytest.mark.parametrize(("kind", "snr_db"), LINE_NOISE[:3])
def test_speech_from_the_first_frame_barges_in_from_its_first_frame(
    hebrew_cache_dir: Path, kind: NoiseKind, snr_db: float | None
) -> None:
    """With the agent talking (the greeting), speech from the stream's first frame barges
    in with its onset at that frame, after the barge-in minimum of voice, and ends at its
    true end."""
    clip = _from_first_frame(UTTERANCE, hebrew_cache_dir)
    events = _run(Endpointer(), _on_line(clip.pcm16, kind, snr_db), agent_speaking=True)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    (started_at, started), (_, ended) = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert started.onset_ms <= 60
    assert started_at - started.onset_ms >= DEFAULT_BARGE_IN_MIN_SPEECH_MS
    assert abs(ended.end_ms - clip.speech_end_ms) <= 60


@pytest.mark.parametrize("agent_speaking", [False, True], ids=["idle", "agent"])
@pytest.mark.parametrize("text", [FIRST_WORDS, UTTERANCE], ids=["first-words", "sentence"])
@pytest.mark.parametrize(("kind", "snr_db"), LINE_NOISE)
def test_speech_from_the_first_frame_is_heard_as_a_second_into_the_line(
    hebrew_cache_dir: Path,
    kind: NoiseKind,
    snr_db: float | None,
    text: str,
    agent_speaking: bool,
) -> None:
    """Speech from the stream's first frame gives the events the same speech gives after a
    second of the same line (the floor known): a start within three frames of it whose
    audio (from PREROLL_MS before the onset) misses no more of the speech, and an end
    within a frame."""
    at_start = _from_first_frame(text, hebrew_cache_dir)
    later = labelled_clip([text], lead_ms=1000, trail_ms=1500, cache_dir=hebrew_cache_dir)
    got = _relative(
        _run(Endpointer(), _on_line(at_start.pcm16, kind, snr_db), agent_speaking=agent_speaking),
        0,
    )
    want = _relative(
        _run(Endpointer(), _on_line(later.pcm16, kind, snr_db), agent_speaking=agent_speaking),
        later.speech_start_ms,
    )
    assert [name for name, _ in got] == [name for name, _ in want]
    for (name, got_ms), (_, want_ms) in zip(got, want, strict=True):
        if name == "SpeechStarted":
            assert got_ms <= want_ms + 60
            assert got_ms - PREROLL_MS <= max(0.0, want_ms - PREROLL_MS)
        else:
            assert abs(got_ms - want_ms) <= 20


@pytest.mark.parametrize("agent_speaking", [False, True])
@pytest.mark.parametrize(
    ("kind", "snr_db"), [("white", 20.0), ("hum", 20.0), ("white", 10.0), ("white", 5.0)]
)
def test_line_noise_from_the_first_frame_starts_nothing(
    clip: LabelledClip, kind: NoiseKind, snr_db: float, agent_speaking: bool
) -> None:
    """Eight seconds of line noise from the stream's first frame (the noise levels of
    scripts/vad_eval.py) start no utterance, idle or over the agent."""
    noise = mix_noise(
        silence(8000), snr_db, seed=13, kind=kind, reference_power=active_power(clip.pcm16)
    )
    assert _run(Endpointer(), noise, agent_speaking=agent_speaking) == []


@pytest.mark.parametrize(("kind", "snr_db"), LINE_NOISE[1:])
def test_speech_in_the_first_second_of_a_noisy_line_starts_at_its_onset(
    hebrew_cache_dir: Path, kind: NoiseKind, snr_db: float
) -> None:
    """Speech 300 ms into a noisy stream (the floor still settling) starts where it does
    after a second and a half of the same line, not earlier on the noise before it."""
    soon = labelled_clip([FIRST_WORDS], lead_ms=300, trail_ms=1500, cache_dir=hebrew_cache_dir)
    later = labelled_clip([FIRST_WORDS], lead_ms=1500, trail_ms=1500, cache_dir=hebrew_cache_dir)
    got = _relative(_run(Endpointer(), _on_line(soon.pcm16, kind, snr_db)), soon.speech_start_ms)
    want = _relative(_run(Endpointer(), _on_line(later.pcm16, kind, snr_db)), later.speech_start_ms)
    assert [name for name, _ in got] == ["SpeechStarted", "SpeechEnded"]
    assert [name for name, _ in want] == ["SpeechStarted", "SpeechEnded"]
    assert abs(got[0][1] - want[0][1]) <= 40


def test_reset_hears_speech_from_the_first_frame_of_the_next_stream(
    hebrew_cache_dir: Path,
) -> None:
    """After reset() the warm-up starts again: first-frame speech gives the same events."""
    clip = _from_first_frame(FIRST_WORDS, hebrew_cache_dir)
    endpointer = Endpointer()
    first = _run(endpointer, clip.pcm16)
    endpointer.reset()
    assert _run(endpointer, clip.pcm16) == first
    assert [type(e) for _, e in first] == [SpeechStarted, SpeechEnded]


def test_quiet_middle_of_an_utterance_begun_in_the_warmup_does_not_end_it(
    hebrew_cache_dir: Path,
) -> None:
    """An utterance from the stream's first frame whose middle sinks to the noise (10 dB
    SNR) is judged again as the floor falls (the sustain gate): one utterance, ended
    after its speech, not in its quiet middle."""
    clip = _from_first_frame("יש לי כבר ספק אחר", hebrew_cache_dir)
    noisy = mix_noise(clip.pcm16, 10.0, seed=20240623)
    events = _run(Endpointer(), noisy)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    ended_at, ended = events[1]
    assert isinstance(ended, SpeechEnded)
    assert ended_at >= clip.speech_end_ms


def test_a_pause_reported_in_the_warmup_is_taken_back_when_the_floor_falls(
    hebrew_cache_dir: Path,
) -> None:
    """Speech from the first frame paused (speculation) against the early floor: when a
    quieter frame shows the caller was still talking, SpeechResumed reports the voice
    where it was (before the frame that decided it); one SpeechEnded at the true end."""
    clip = _from_first_frame("אני לא מעוניין, אל תתקשרו יותר", hebrew_cache_dir)
    events = _run(Endpointer(speculate_silence_ms=120), clip.pcm16)
    kinds = [type(e) for _, e in events]
    assert kinds[0] is SpeechStarted and kinds[-1] is SpeechEnded
    assert kinds.count(SpeechEnded) == 1
    pauses = [k for k in kinds if k in (SpeechPaused, SpeechResumed)]
    assert pauses[::2] == [SpeechPaused] * len(pauses[::2])
    assert pauses[1::2] == [SpeechResumed] * len(pauses[1::2])
    retroactive = [
        (at, e) for at, e in events if isinstance(e, SpeechResumed) and at > e.at_ms + 20
    ]
    assert retroactive and retroactive[0][0] <= 1000
    ended = events[-1][1]
    assert isinstance(ended, SpeechEnded)
    assert abs(ended.end_ms - clip.speech_end_ms) <= 60


@pytest.mark.parametrize("snr_db", [None, 10.0])
def test_echo_of_the_greeting_from_the_first_frame_does_not_barge_in(
    hebrew_cache_dir: Path, snr_db: float | None
) -> None:
    """The agent's voice returning 25 dB down from the stream's first frame (the greeting's
    echo), clean or with line noise, never barges in once judged against the line's floor."""
    echo = scale(_from_first_frame(UTTERANCE, hebrew_cache_dir).pcm16, -25.0)
    if snr_db is not None:
        echo = mix_noise(echo, snr_db, seed=2, reference_power=active_power(echo))
    assert _run(Endpointer(), echo, agent_speaking=True) == []


def _burst_then_line(kind: NoiseKind, burst_dbfs: float, burst_ms: int) -> bytes:
    burst = make_noise(8 * burst_ms, 32768 * 10 ** (burst_dbfs / 20), seed=31, kind=kind)
    line = make_noise(8 * (3000 - burst_ms), 32768 * 10 ** ((burst_dbfs - 25) / 20), seed=32)
    samples = np.concatenate([burst, line])
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("agent_speaking", [False, True], ids=["idle", "agent"])
@pytest.mark.parametrize(
    ("kind", "burst_dbfs", "burst_ms"),
    [("white", -20.0, 400), ("white", -30.0, 200), ("hum", -20.0, 300), ("hum", -30.0, 100)],
)
def test_a_steady_burst_opening_the_stream_starts_nothing(
    kind: NoiseKind, burst_dbfs: float, burst_ms: int, agent_speaking: bool
) -> None:
    """A steady noise or hum burst from the first frame that stops, leaving the line 25 dB
    quieter, is not taken for speech when the warm-up is judged again (webrtcvad calls the
    first frames of anything voice; the burst's level does not move as a voice's does)."""
    audio = _burst_then_line(kind, burst_dbfs, burst_ms)
    assert _run(Endpointer(), audio, agent_speaking=agent_speaking) == []


RINGBACK_HZ = (440.0, 480.0)
"""The North American ringback tone; its tail can reach a Media Stream's first frames."""


def _fading_from_first_frame(kind: str, start_dbfs: float, drop_db: float, fade_ms: int) -> bytes:
    n_samples = 8 * 3000
    if kind == "ringback":
        t = np.arange(n_samples) / 8000
        wave = sum(np.sin(2 * np.pi * hz * t) for hz in RINGBACK_HZ)
        wave = np.asarray(wave) / np.sqrt(np.mean(np.asarray(wave) ** 2))
    else:
        wave = make_noise(n_samples, 1.0, seed=41, kind="hum" if kind == "hum" else "white")
    t_ms = np.arange(n_samples) / 8
    level_dbfs = start_dbfs - drop_db * np.minimum(t_ms / fade_ms, 1.0)
    samples = wave * 32768 * 10 ** (level_dbfs / 20)
    return np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("agent_speaking", [False, True], ids=["idle", "agent"])
@pytest.mark.parametrize(
    ("kind", "start_dbfs", "drop_db", "fade_ms"),
    [("white", -20.0, 25.0, 400), ("hum", -20.0, 40.0, 800), ("ringback", -20.0, 30.0, 800)],
)
def test_a_sound_fading_out_from_the_first_frame_starts_nothing(
    kind: str, start_dbfs: float, drop_db: float, fade_ms: int, agent_speaking: bool
) -> None:
    """Noise, hum or a ringback tail that opens the stream and fades out (its levels span
    many dB but only fall) is not taken for speech when the warm-up is judged again, so it
    neither starts a turn nor barges in over the greeting."""
    audio = _fading_from_first_frame(kind, start_dbfs, drop_db, fade_ms)
    assert _run(Endpointer(), audio, agent_speaking=agent_speaking) == []
