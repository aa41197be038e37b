"""Frame-level voice activity: noise-floor tracking and the energy gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicebot.audio.vad import (
    NOISE_FLOOR_WARMUP_MS,
    GateMode,
    NoiseFloorTracker,
    VoiceActivityDetector,
    frame_dbfs,
)
from voicebot.testing.hebrew_audio import (
    NoiseKind,
    active_power,
    make_noise,
    mix_noise,
    pcm16_frames,
    scale,
    silence,
    synthesize_hebrew,
)


def _noise(duration_ms: int, rms: float, seed: int = 1) -> bytes:
    noise = make_noise(8 * duration_ms, rms, seed=seed)
    return np.clip(np.rint(noise), -32768, 32767).astype("<i2").tobytes()


def test_frame_dbfs_of_full_scale_square_and_silence() -> None:
    """A full-scale square wave is 0 dBFS; digital silence is the -96 dBFS floor."""
    square = np.tile(np.array([32767, -32767], dtype="<i2"), 80).tobytes()
    assert frame_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert frame_dbfs(bytes(320)) == -96.0


def test_noise_floor_follows_louder_noise_within_about_a_second() -> None:
    """After a step from -70 to -40 dBFS the floor reaches -40 within 1.2 s, not before 0.8 s."""
    tracker = NoiseFloorTracker()
    for _ in range(50):
        tracker.update(-70.0)
    levels = [tracker.update(-40.0) for _ in range(60)]
    assert levels[39] == -70.0  # 0.8 s: older quiet blocks still in the window
    assert levels[59] == -40.0


def test_noise_floor_drops_at_once_to_a_quieter_frame() -> None:
    """A single quieter frame lowers the floor immediately."""
    tracker = NoiseFloorTracker()
    for _ in range(20):
        tracker.update(-40.0)
    assert tracker.update(-60.0) == -60.0


def test_steady_white_noise_is_not_speech() -> None:
    """Loud steady white noise, which webrtcvad alone calls speech, is rejected."""
    vad = VoiceActivityDetector()
    decisions = [vad.is_speech(f) for f in pcm16_frames(_noise(5000, 1000.0))]
    assert sum(decisions) == 0
    assert vad.noise_floor_dbfs == pytest.approx(-30.3, abs=1.5)


def test_silence_is_not_speech() -> None:
    """Digital silence is never speech."""
    vad = VoiceActivityDetector()
    assert not any(vad.is_speech(f) for f in pcm16_frames(silence(2000)))


def test_wrong_frame_size_raises() -> None:
    """is_speech refuses frames that are not 20 ms at 8 kHz."""
    with pytest.raises(ValueError, match="320"):
        VoiceActivityDetector().is_speech(bytes(318))


def test_barge_in_mode_requires_a_louder_frame_than_onset_mode(hebrew_cache_dir: Path) -> None:
    """Speech at -50 dBFS (echo level) passes the onset gate, never the barge-in gate."""
    speech = synthesize_hebrew("מחר בעשר בבוקר מתאים לי", cache_dir=hebrew_cache_dir)
    gain_db = -50.0 - 10 * np.log10(active_power(speech) / 32768**2)
    clip = silence(500) + scale(speech, gain_db)
    onset, barge = VoiceActivityDetector(), VoiceActivityDetector()
    onset_voiced = sum(onset.is_speech(f, mode=GateMode.ONSET) for f in pcm16_frames(clip))
    barge_voiced = sum(barge.is_speech(f, mode=GateMode.BARGE_IN) for f in pcm16_frames(clip))
    assert onset_voiced >= 30
    assert barge_voiced == 0


def test_first_frames_of_speech_are_speech_once_judged_again(hebrew_cache_dir: Path) -> None:
    """ "הלו" from the stream's first frame fails the gate as it arrives (no floor yet, then
    its own level), and passes every gate when judged again after a quieter frame."""
    speech = synthesize_hebrew("הלו", cache_dir=hebrew_cache_dir)
    frames = pcm16_frames(speech)[:4]
    vad = VoiceActivityDetector()
    live = [vad.is_speech(f, mode=GateMode.BARGE_IN) for f in frames]
    assert not live[0]
    for frame in pcm16_frames(silence(100)):
        vad.is_speech(frame)
    for mode in GateMode:
        again = [vad.judge_again(i, mode) for i in range(len(frames))]
        assert again[0] and sum(again) >= 2, mode


@pytest.mark.parametrize(
    ("kind", "snr_db"), [("white", 20.0), ("hum", 20.0), ("white", 10.0), ("white", 5.0)]
)
def test_line_noise_from_the_first_frame_is_not_speech_judged_again(
    hebrew_cache_dir: Path, kind: NoiseKind, snr_db: float
) -> None:
    """The first second of line noise (which webrtcvad calls speech at first) is not
    speech in any mode when judged against the floor it settles to."""
    speech = synthesize_hebrew("כן, אני יכול לדבר עכשיו", cache_dir=hebrew_cache_dir)
    noise = mix_noise(
        silence(NOISE_FLOOR_WARMUP_MS),
        snr_db,
        seed=7,
        kind=kind,
        reference_power=active_power(speech),
    )
    vad = VoiceActivityDetector()
    frames = pcm16_frames(noise)
    for frame in frames:
        vad.is_speech(frame)
    assert vad.warming_up
    for mode in GateMode:
        assert not any(vad.judge_again(i, mode) for i in range(len(frames))), mode


def test_only_the_warmup_can_be_judged_again() -> None:
    """judge_again refuses a frame not yet seen and any frame once the warm-up is over;
    reset() starts a new warm-up."""
    vad = VoiceActivityDetector()
    vad.is_speech(bytes(320))
    assert not vad.judge_again(0, GateMode.ONSET)
    with pytest.raises(IndexError):
        vad.judge_again(1, GateMode.ONSET)
    for frame in pcm16_frames(silence(NOISE_FLOOR_WARMUP_MS)):
        vad.is_speech(frame)
    assert not vad.warming_up
    with pytest.raises(IndexError):
        vad.judge_again(0, GateMode.ONSET)
    vad.reset()
    assert vad.warming_up and vad.frames_seen == 0
    vad.is_speech(bytes(320))
    assert not vad.judge_again(0, GateMode.ONSET)


def test_level_span_and_rise_tell_a_voice_from_a_steady_or_fading_burst(
    hebrew_cache_dir: Path,
) -> None:
    """Judged again after a quieter stretch, the first frames of "הלו" span several dB and
    rise between syllable parts; a steady noise burst as loud spans under 3 dB; one fading
    out by 2 dB a frame spans many dB yet never rises by 2 dB."""
    speech = pcm16_frames(synthesize_hebrew("הלו", cache_dir=hebrew_cache_dir))[:4]
    burst = pcm16_frames(_noise(200, 1000.0))
    fading = [
        scale(frame, -2.0 * index) for index, frame in enumerate(pcm16_frames(_noise(200, 1000.0)))
    ]
    measured = []
    for opening in (speech, burst, fading):
        vad = VoiceActivityDetector()
        for frame in opening + pcm16_frames(silence(100)):
            vad.is_speech(frame)
        measured.append(vad.speech_level_span_db(0, len(opening) - 1, GateMode.ONSET))
    (speech_span, speech_rise), (burst_span, _), (fading_span, fading_rise) = measured
    assert speech_span >= 6.0 and speech_rise >= 2.0
    assert 0.0 < burst_span < 3.0
    assert fading_span >= 6.0 and fading_rise < 2.0
