"""Real Hebrew speech for tests, evaluations and load tests, made with espeak-ng.

This module owns synthesising Hebrew utterances to 8 kHz PCM16 (through the
production :class:`~voicebot.audio.resample.Resampler`), mixing in line noise at
a chosen SNR, building labelled clips (known silence before and after), and a
bounded-by-key on-disk cache so repeated runs reuse the synthesis.

espeak-ng runs as a subprocess with list arguments (no shell). These helpers
block; call them from a thread when on an event loop.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np

from voicebot.audio.codec import FRAME_BYTES_PCM16, PCM16_SAMPLE_BYTES, SAMPLE_RATE_HZ
from voicebot.audio.framing import UlawFramer
from voicebot.audio.resample import Resampler

ESPEAK_BINARY: Final = "espeak-ng"
ESPEAK_VOICE: Final = "he"
DEFAULT_SPEED_WPM: Final = 160
ESPEAK_TIMEOUT_S: Final = 30.0
CACHE_FORMAT_VERSION: Final = 1
"""Bump when synthesis or resampling changes so stale cache entries are not reused."""
TRIM_THRESHOLD_RATIO: Final = 0.01
"""Samples below 1 % of the peak (−40 dB) at the edges count as silence when trimming."""
HUM_FUNDAMENTAL_HZ: Final = 50.0
HUM_HARMONICS: Final = (1, 3, 5, 7)
PCM16_MAX: Final = 32767

NoiseKind = Literal["white", "hum"]


def espeak_available() -> bool:
    """True if the espeak-ng binary is on PATH."""
    return shutil.which(ESPEAK_BINARY) is not None


def _parse_wav(wav: bytes) -> tuple[bytes, int]:
    """Return (PCM16 samples, sample rate) from espeak-ng's streamed WAV.

    espeak-ng writes a placeholder data size when writing to a pipe, so the data
    chunk is taken to run to the end of the output.
    """
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise ValueError("espeak-ng did not produce a WAV stream")
    pos = 12
    rate_hz = 0
    while pos + 8 <= len(wav):
        chunk_id, size = wav[pos : pos + 4], struct.unpack_from("<I", wav, pos + 4)[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            channels, rate_hz = struct.unpack_from("<HI", wav, body + 2)
            bits = struct.unpack_from("<H", wav, body + 14)[0]
            if channels != 1 or bits != 16:
                raise ValueError(f"unexpected WAV format: {channels} ch, {bits} bit")
        elif chunk_id == b"data":
            data = wav[body:]
            return data[: len(data) - len(data) % PCM16_SAMPLE_BYTES], rate_hz
        pos = body + size + (size & 1)
    raise ValueError("WAV stream has no data chunk")


def _run_espeak(text: str, voice: str, speed_wpm: int) -> tuple[bytes, int]:
    result = subprocess.run(  # noqa: S603 - fixed binary, list arguments, no shell
        [ESPEAK_BINARY, "-v", voice, "-s", str(speed_wpm), "--stdout", text],
        capture_output=True,
        check=True,
        timeout=ESPEAK_TIMEOUT_S,
    )
    return _parse_wav(result.stdout)


def _cache_path(cache_dir: Path, kind: str, *parts: object) -> Path:
    key = "\x1f".join(str(p) for p in (CACHE_FORMAT_VERSION, kind, *parts))
    return cache_dir / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.pcm"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def trim_silence(pcm16: bytes, *, threshold_ratio: float = TRIM_THRESHOLD_RATIO) -> bytes:
    """Cut leading and trailing samples quieter than ``threshold_ratio`` of the peak."""
    samples = np.frombuffer(pcm16, dtype="<i2")
    if samples.size == 0:
        return pcm16
    magnitude = np.abs(samples.astype(np.int32))
    loud = np.flatnonzero(magnitude > threshold_ratio * magnitude.max())
    if loud.size == 0:
        return b""
    return samples[loud[0] : loud[-1] + 1].tobytes()


def synthesize_hebrew(
    text: str,
    *,
    speed_wpm: int = DEFAULT_SPEED_WPM,
    voice: str = ESPEAK_VOICE,
    trim: bool = True,
    cache_dir: Path | None = None,
) -> bytes:
    """Speak ``text`` with espeak-ng and return PCM16 mono at 8 kHz.

    With ``trim`` the leading and trailing silence espeak-ng adds is removed, so the
    clip starts and ends on speech (useful as a ground-truth label). Results are
    cached under ``cache_dir`` keyed by every parameter.
    """
    path = (
        _cache_path(cache_dir, "tts", text, speed_wpm, voice, trim)
        if cache_dir is not None
        else None
    )
    if path is not None and path.exists():
        return path.read_bytes()
    raw, rate_hz = _run_espeak(text, voice, speed_wpm)
    resampler = Resampler(rate_hz, SAMPLE_RATE_HZ)
    pcm16 = resampler.process(raw) + resampler.flush()
    if trim:
        pcm16 = trim_silence(pcm16)
    if path is not None:
        _write_atomic(path, pcm16)
    return pcm16


def silence(duration_ms: int) -> bytes:
    """PCM16 8 kHz digital silence of ``duration_ms``."""
    return bytes(SAMPLE_RATE_HZ * duration_ms // 1000 * PCM16_SAMPLE_BYTES)


def duration_ms(pcm16: bytes) -> float:
    """Length of PCM16 8 kHz audio in milliseconds."""
    return len(pcm16) / PCM16_SAMPLE_BYTES * 1000 / SAMPLE_RATE_HZ


def active_power(pcm16: bytes) -> float:
    """Mean power of the non-silent part of ``pcm16`` (edges trimmed), in squared LSB."""
    samples = np.frombuffer(trim_silence(pcm16), dtype="<i2").astype(np.float64)
    return float(np.mean(samples**2)) if samples.size else 0.0


def make_noise(n_samples: int, rms: float, *, seed: int, kind: NoiseKind = "white") -> np.ndarray:
    """Float64 noise of ``n_samples`` at ``rms``: white (Gaussian) or mains hum with harmonics."""
    rng = np.random.default_rng(seed)
    if kind == "white":
        noise = rng.standard_normal(n_samples)
    else:
        t = np.arange(n_samples) / SAMPLE_RATE_HZ
        phases = rng.uniform(0, 2 * np.pi, len(HUM_HARMONICS))
        noise = sum(
            (np.sin(2 * np.pi * HUM_FUNDAMENTAL_HZ * h * t + ph) / h)
            for h, ph in zip(HUM_HARMONICS, phases, strict=True)
        )
        noise = np.asarray(noise, dtype=np.float64) + 0.1 * rng.standard_normal(n_samples)
    current = float(np.sqrt(np.mean(noise**2))) or 1.0
    return np.asarray(noise * (rms / current), dtype=np.float64)


def _to_pcm16(samples: np.ndarray) -> bytes:
    clipped: np.ndarray = np.clip(np.rint(samples), -PCM16_MAX - 1, PCM16_MAX)
    return clipped.astype("<i2").tobytes()


def mix_noise(
    pcm16: bytes,
    snr_db: float,
    *,
    seed: int,
    kind: NoiseKind = "white",
    reference_power: float | None = None,
) -> bytes:
    """Add noise so that speech power / noise power equals ``snr_db``.

    Speech power is measured over the active (trimmed) part of ``pcm16`` unless
    ``reference_power`` is given (needed for clips that hold no speech). Output is
    clipped to the PCM16 range. Deterministic for a given ``seed``.
    """
    power = active_power(pcm16) if reference_power is None else reference_power
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    noise_rms = float(np.sqrt(power / 10 ** (snr_db / 10)))
    mixed: np.ndarray = samples + make_noise(samples.size, noise_rms, seed=seed, kind=kind)
    return _to_pcm16(mixed)


def scale(pcm16: bytes, gain_db: float) -> bytes:
    """Return ``pcm16`` amplified by ``gain_db`` (negative to attenuate), clipped."""
    return _to_pcm16(np.frombuffer(pcm16, dtype="<i2").astype(np.float64) * 10 ** (gain_db / 20))


def pcm16_frames(pcm16: bytes) -> list[bytes]:
    """Cut PCM16 8 kHz into whole 20 ms frames (320 bytes), zero-padding the last."""
    if len(pcm16) % FRAME_BYTES_PCM16:
        pcm16 += bytes(FRAME_BYTES_PCM16 - len(pcm16) % FRAME_BYTES_PCM16)
    return [pcm16[i : i + FRAME_BYTES_PCM16] for i in range(0, len(pcm16), FRAME_BYTES_PCM16)]


def to_ulaw_frames(pcm16: bytes) -> list[bytes]:
    """Encode PCM16 8 kHz to 160-byte μ-law frames as Twilio sends them (last padded)."""
    framer = UlawFramer()
    return framer.push(pcm16) + framer.flush(pad=True)


@dataclass(frozen=True, slots=True)
class LabelledClip:
    """A clip with ground truth: speech runs from ``speech_start_ms`` to ``speech_end_ms``."""

    text: str
    pcm16: bytes
    speech_start_ms: float
    speech_end_ms: float


def labelled_clip(
    phrases: list[str],
    *,
    lead_ms: int,
    trail_ms: int,
    pause_ms: int = 0,
    cache_dir: Path | None = None,
) -> LabelledClip:
    """Silence, the phrases joined by ``pause_ms`` of silence, silence: with true edges."""
    speech = silence(pause_ms).join(synthesize_hebrew(p, cache_dir=cache_dir) for p in phrases)
    return LabelledClip(
        text=" … ".join(phrases),
        pcm16=silence(lead_ms) + speech + silence(trail_ms),
        speech_start_ms=float(lead_ms),
        speech_end_ms=lead_ms + duration_ms(speech),
    )
