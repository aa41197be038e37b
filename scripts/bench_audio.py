"""Per-frame CPU cost of the audio path, in µs per 20 ms frame (p50/p99).

Measures each stage the call pipeline runs once per 20 ms frame: μ-law decode,
the Endpointer (webrtcvad + energy gate + state machine) on real-looking audio,
resampling 20 ms of TTS output from 24 kHz and 22.05 kHz to 8 kHz, and μ-law
encode + framing. Each sample is the time of one call, taken with
``time.perf_counter_ns``; the budget for one call's whole audio path is 20 ms,
so 100 concurrent calls leave 200 µs per call per frame on one core.

Usage: .venv/bin/python scripts/bench_audio.py [--frames 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Final

import numpy as np

from voicebot.audio.codec import FRAME_BYTES_PCM16, FRAME_MS, pcm16_to_ulaw, ulaw_to_pcm16
from voicebot.audio.endpointing import Endpointer
from voicebot.audio.framing import UlawFramer
from voicebot.audio.resample import Resampler

DEFAULT_FRAMES: Final = 20_000
WARMUP_FRAMES: Final = 200
SEED: Final = 1
CALL_BUDGET_US: Final = FRAME_MS * 1000


def _speechlike(rate_hz: int, n_frames: int, rng: np.random.Generator) -> bytes:
    """Bursts of a harmonic 'voice' with noise and gaps: exercises every VAD state."""
    n = rate_hz * FRAME_MS // 1000 * n_frames
    t = np.arange(n) / rate_hz
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 15))
    envelope = (np.sin(2 * np.pi * 0.4 * t) > 0).astype(np.float64)  # 1.25 s on / off
    signal = 4000 * np.asarray(voice) * envelope + 200 * rng.standard_normal(n)
    return np.clip(signal, -32768, 32767).astype("<i2").tobytes()


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data) - size + 1, size)]


def measure(name: str, step: Callable[[bytes], object], inputs: list[bytes]) -> tuple[str, ...]:
    """Time ``step`` on each input; return a table row (µs)."""
    for chunk in inputs[:WARMUP_FRAMES]:
        step(chunk)
    clock = time.perf_counter_ns
    samples = np.empty(len(inputs), dtype=np.int64)
    for i, chunk in enumerate(inputs):
        start = clock()
        step(chunk)
        samples[i] = clock() - start
    us = samples / 1000
    p50, p99, mean = np.percentile(us, 50), np.percentile(us, 99), us.mean()
    calls = CALL_BUDGET_US / mean
    return (name, f"{p50:8.1f}", f"{p99:8.1f}", f"{mean:8.1f}", f"{us.max():9.1f}", f"{calls:9.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    n = args.frames

    pcm_8k = _speechlike(8000, n, rng)
    frames_pcm = _chunks(pcm_8k, FRAME_BYTES_PCM16)
    frames_ulaw = [pcm16_to_ulaw(f) for f in frames_pcm]
    tts_24k = _chunks(_speechlike(24000, n, rng), 24000 * FRAME_MS // 1000 * 2)
    tts_22k = _chunks(_speechlike(22050, n, rng), 22050 * FRAME_MS // 1000 * 2)

    endpointer = Endpointer()
    r24, r22 = Resampler(24000), Resampler(22050)
    framer = UlawFramer()

    def decode_and_endpoint(ulaw: bytes) -> object:
        return endpointer.process(ulaw_to_pcm16(ulaw))

    rows = [
        measure("μ-law decode (160 B)", ulaw_to_pcm16, frames_ulaw),
        measure("endpointer.process", endpointer.process, frames_pcm),
        measure("decode + endpointer", decode_and_endpoint, frames_ulaw),
        measure("resample 24k→8k (20 ms)", r24.process, tts_24k),
        measure("resample 22.05k→8k (20 ms)", r22.process, tts_22k),
        measure("μ-law encode + framing", framer.push, frames_pcm),
    ]
    header = ("stage", "p50 µs", "p99 µs", "mean µs", "max µs", "calls/core")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print(f"{n} frames per stage; calls/core = 20 ms / mean cost of that stage alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
