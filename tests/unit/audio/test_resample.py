"""Streaming resampler: continuity across chunks, anti-aliasing, odd byte counts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from voicebot.audio.resample import Resampler

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def _sine(freq_hz: float, rate_hz: int, duration_s: float, amplitude: float = 12000.0) -> bytes:
    t = np.arange(int(rate_hz * duration_s)) / rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype("<i2").tobytes()


def _rms(pcm16: bytes, skip: int = 400) -> float:
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)[skip:-skip]
    return float(np.sqrt(np.mean(samples**2)))


def _chunked(resampler: Resampler, data: bytes, sizes: list[int]) -> bytes:
    out, pos, i = [], 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(resampler.process(data[pos : pos + size]))
        pos += size
        i += 1
    out.append(resampler.flush())
    return b"".join(out)


@pytest.mark.parametrize("in_rate_hz", [24000, 22050, 16000])
def test_chunked_output_equals_one_shot(in_rate_hz: int) -> None:
    """A 1 kHz sine resampled in odd-sized chunks matches a one-shot conversion."""
    data = _sine(1000, in_rate_hz, 1.0)
    whole = Resampler(in_rate_hz)
    one_shot = np.frombuffer(whole.process(data) + whole.flush(), dtype="<i2")
    chunked = np.frombuffer(_chunked(Resampler(in_rate_hz), data, [777, 3, 960, 441]), "<i2")
    assert len(chunked) == len(one_shot) == 8000
    assert np.max(np.abs(chunked.astype(np.int32) - one_shot)) <= 4


def test_output_is_the_same_tone_at_8khz() -> None:
    """A 1 kHz tone at 24 kHz comes out as a 1 kHz tone of the same level at 8 kHz."""
    resampler = Resampler(24000)
    out = resampler.process(_sine(1000, 24000, 1.0)) + resampler.flush()
    samples = np.frombuffer(out, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 8000 / len(samples)
    assert peak_hz == pytest.approx(1000, abs=2)
    assert _rms(out) == pytest.approx(12000 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize("tone_hz", [4500.0, 6000.0])
def test_tones_above_4khz_are_removed_unlike_ratecv(tone_hz: float) -> None:
    """Sibilant-band tones are attenuated > 40 dB; audioop.ratecv folds them into the band."""
    data = _sine(tone_hz, 24000, 1.0)
    resampler = Resampler(24000)
    ours = _rms(resampler.process(data) + resampler.flush())
    theirs = _rms(audioop.ratecv(data, 2, 1, 24000, 8000, None)[0])
    input_rms = 12000 / np.sqrt(2)
    assert 20 * np.log10(ours / input_rms) < -40
    assert 20 * np.log10(theirs / input_rms) > -10  # ratecv aliases most of the energy


def test_dangling_byte_is_carried_into_next_chunk() -> None:
    """Splitting a stream on odd byte boundaries loses no sample."""
    data = _sine(500, 8000, 0.1)
    resampler = Resampler(8000)
    out = resampler.process(data[:101]) + resampler.process(data[101:]) + resampler.flush()
    assert out == data


def test_equal_rates_pass_through_unchanged() -> None:
    """With equal rates the bytes come back as they went in, with no delay."""
    data = _sine(300, 8000, 0.02)
    assert Resampler(8000, 8000).process(data) == data


def test_invalid_rate_is_rejected() -> None:
    """A zero or negative sample rate raises ValueError."""
    with pytest.raises(ValueError, match="positive"):
        Resampler(0)
