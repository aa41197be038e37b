"""Evaluate the Endpointer on labelled Hebrew speech and recommend endpoint_silence_ms.

Builds a labelled set of natural caller utterances synthesised with espeak-ng
(known silence before and after, some split by a 250–350 ms mid-sentence pause),
mixes noise at several SNRs, runs the Endpointer for several endpoint-silence
values and prints, per value and per condition: detection rate, false starts,
speech-end error (detected end_ms − true end) p50/p90/max, turn latency
(decision time − true end) p50, and premature endpoints (an utterance ended
before its speech was over). Noise-only clips count false starts on an idle line.

A second table, at DEFAULT_ENDPOINT_SILENCE_MS, covers speech at the start of the stream:
the same utterances with 0 ms of leading silence (a caller already talking when the Media
Stream connects) against the usual lead, on an idle line and with the agent talking
throughout (the barge-in gate, as during the greeting); its noise column counts starts on
the noise-only clip, which begins at frame 0, in that mode. Onset latency is the decision
time minus the true start of speech; a start is cut when the audio the Endpointer hands
over (from PREROLL_MS before the reported onset) begins after the speech did. The set adds
START_UTTERANCES, the short first words of a call.

Usage: .venv/bin/python scripts/vad_eval.py [--cache-dir .cache/hebrew_audio]
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from voicebot.audio.codec import FRAME_MS
from voicebot.audio.endpointing import (
    DEFAULT_ENDPOINT_SILENCE_MS,
    PREROLL_MS,
    Endpointer,
    SpeechEnded,
    SpeechStarted,
)
from voicebot.testing.hebrew_audio import (
    LabelledClip,
    NoiseKind,
    active_power,
    espeak_available,
    labelled_clip,
    mix_noise,
    pcm16_frames,
    silence,
)

UTTERANCES: Final = (
    "כן, אני יכול לדבר עכשיו",
    "מחר בעשר בבוקר מתאים לי",
    "תוריד אותי מהרשימה בבקשה",
    "לא תודה, זה לא מעניין אותי",
    "מי זה מדבר?",
    "כמה זה עולה בחודש?",
    "אני בעבודה עכשיו, תתקשר אחר כך",
    "אפשר ביום שלישי אחרי הצהריים?",
    "כן",
    "לא",
    "רגע, אני לא שומע אותך טוב",
    "איך השגתם את המספר שלי?",
    "תשלח לי את הפרטים בווטסאפ",
    "יש לי כבר ספק אחר",
    "בסדר, בוא נקבע פגישה",
    "ביום ראשון בשתיים זה טוב",
    "אני צריך לדבר עם אשתי קודם",
    "מה בדיוק אתם מציעים?",
    "שלום, כן, זה אני",
    "אולי בשבוע הבא",
    "תודה רבה, להתראות",
    "אני לא מעוניין, אל תתקשרו יותר",
)
SPLIT_UTTERANCES: Final = (
    (("כן, אני מעוניין", "אבל רק אחרי החגים"), 250),
    (("רגע", "תן לי לבדוק ביומן"), 300),
    (("מחר אני לא יכול", "אולי ביום חמישי"), 350),
    (("זה נשמע טוב", "כמה זה עולה?"), 300),
    (("אני בנהיגה עכשיו", "תתקשר בעוד שעה"), 280),
)
ENDPOINT_SILENCES_MS: Final = (400, 500, 600, 700, 800)
CONDITIONS: Final[tuple[tuple[str, float | None, NoiseKind], ...]] = (
    ("clean", None, "white"),
    ("white 20dB", 20.0, "white"),
    ("hum 20dB", 20.0, "hum"),
    ("white 10dB", 10.0, "white"),
    ("white 5dB", 5.0, "white"),
)
RELIABLE_CONDITIONS: Final = ("clean", "white 20dB", "hum 20dB", "white 10dB")
"""The recommendation requires zero premature endpoints in these conditions."""
LEAD_MS_RANGE: Final = (400, 1500)
TRAIL_MS: Final = 1500
NOISE_ONLY_MS: Final = 8000
ONSET_TOLERANCE_MS: Final = 200
"""A start this close before the true start (pre-roll, noise) still counts as a hit."""
SEED: Final = 20240611
START_UTTERANCES: Final = ("הלו?", "הלו, מי זה?", "כן, הלו, אני שומע")
"""Added to the stream-start table: what a caller says the moment they pick up."""
START_LEADS: Final = (("0 ms", True), ("usual", False))
"""Leading silence of the stream-start table: none, or the main table's LEAD_MS_RANGE."""
START_MODES: Final = (("idle", False), ("agent", True))
"""Line idle, or the agent talking throughout (barge-in gate)."""


@dataclass
class Tally:
    """Accumulated outcomes for one (endpoint_silence_ms, condition) cell."""

    clips: int = 0
    detected: int = 0
    false_starts: int = 0
    premature: int = 0
    cut: int = 0
    end_errors_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    onset_latencies_ms: list[float] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.clips += other.clips
        self.detected += other.detected
        self.false_starts += other.false_starts
        self.premature += other.premature
        self.cut += other.cut
        self.end_errors_ms += other.end_errors_ms
        self.latencies_ms += other.latencies_ms
        self.onset_latencies_ms += other.onset_latencies_ms


def run_clip(
    frames: list[bytes], endpoint_silence_ms: int, *, agent_speaking: bool = False
) -> list[tuple[int, object]]:
    """Feed frames to a fresh Endpointer; return (decision time ms, event) pairs."""
    endpointer = Endpointer(endpoint_silence_ms=endpoint_silence_ms)
    events: list[tuple[int, object]] = []
    for index, frame in enumerate(frames):
        event = endpointer.process(frame, agent_speaking=agent_speaking)
        if event is not None:
            events.append(((index + 1) * FRAME_MS, event))
    return events


def score_clip(clip: LabelledClip, events: list[tuple[int, object]]) -> Tally:
    """Compare events with the clip's ground truth."""
    tally = Tally(clips=1)
    start, end = clip.speech_start_ms, clip.speech_end_ms
    hit_started = False
    for decided_ms, event in events:
        if isinstance(event, SpeechStarted):
            if start - ONSET_TOLERANCE_MS <= event.onset_ms <= end:
                if not hit_started:
                    tally.onset_latencies_ms.append(decided_ms - start)
                    tally.cut += int(event.onset_ms - PREROLL_MS > start)
                hit_started = True
            else:
                tally.false_starts += 1
        elif isinstance(event, SpeechEnded) and event.onset_ms <= end:
            if decided_ms < end:
                tally.premature += 1
            else:
                tally.end_errors_ms.append(event.end_ms - end)
                tally.latencies_ms.append(decided_ms - end)
    tally.detected = int(hit_started and bool(tally.end_errors_ms))
    return tally


def count_starts(events: list[tuple[int, object]]) -> int:
    """Number of SpeechStarted events."""
    return sum(isinstance(event, SpeechStarted) for _, event in events)


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):7.0f}" if values else "      -"


def build_clips(
    cache_dir: Path, *, no_lead: bool = False, extra: tuple[str, ...] = ()
) -> list[LabelledClip]:
    """The labelled set: single utterances (and ``extra`` ones) and ones split by a
    mid-sentence pause; ``no_lead``: speech from the first frame (no silence before it)."""
    rng = random.Random(SEED)
    clips = [
        labelled_clip(
            [text],
            lead_ms=0 if no_lead else rng.randrange(*LEAD_MS_RANGE, FRAME_MS),
            trail_ms=TRAIL_MS,
            cache_dir=cache_dir,
        )
        for text in UTTERANCES + extra
    ]
    clips += [
        labelled_clip(
            list(phrases),
            pause_ms=pause_ms,
            lead_ms=0 if no_lead else rng.randrange(*LEAD_MS_RANGE, 20),
            trail_ms=TRAIL_MS,
            cache_dir=cache_dir,
        )
        for phrases, pause_ms in SPLIT_UTTERANCES
    ]
    return clips


def noisy_variants(clips: list[LabelledClip], snr_db: float | None, kind: NoiseKind) -> list[bytes]:
    """The clips' audio with noise at ``snr_db`` (clean for None), one seed per clip."""
    return [
        c.pcm16 if snr_db is None else mix_noise(c.pcm16, snr_db, seed=SEED + i, kind=kind)
        for i, c in enumerate(clips)
    ]


def noise_only_clip(cond_index: int, reference_power: float) -> bytes:
    """NOISE_ONLY_MS of the condition's noise alone (digital silence when clean)."""
    _, snr_db, kind = CONDITIONS[cond_index]
    if snr_db is None:
        return silence(NOISE_ONLY_MS)
    return mix_noise(
        silence(NOISE_ONLY_MS),
        snr_db,
        seed=SEED - cond_index,
        kind=kind,
        reference_power=reference_power,
    )


def print_stream_start(clip_sets: dict[bool, list[LabelledClip]], reference_power: float) -> None:
    """The stream-start table: speech from frame 0 against the usual lead, per mode."""
    silence_ms = DEFAULT_ENDPOINT_SILENCE_MS
    print(f"speech at the start of the stream (endpoint_silence_ms={silence_ms})")
    header = (
        f"{'lead':<6} {'mode':<6} {'condition':<11} {'detect':>7} {'false':>6} {'noise':>6} "
        f"{'premat':>6} {'cut':>4} {'err p50':>7} {'err max':>7} {'on p50':>7} {'on max':>7}"
    )
    print(header)
    print("-" * len(header))
    for lead_name, no_lead in START_LEADS:
        clips = clip_sets[no_lead]
        for mode_name, agent_speaking in START_MODES:
            total, noise_total = Tally(), 0
            for cond_index, (name, snr_db, kind) in enumerate(CONDITIONS):
                t = Tally()
                for clip, pcm16 in zip(clips, noisy_variants(clips, snr_db, kind), strict=True):
                    events = run_clip(
                        pcm16_frames(pcm16), silence_ms, agent_speaking=agent_speaking
                    )
                    t.merge(score_clip(clip, events))
                noise = count_starts(
                    run_clip(
                        pcm16_frames(noise_only_clip(cond_index, reference_power)),
                        silence_ms,
                        agent_speaking=agent_speaking,
                    )
                )
                total.merge(t)
                noise_total += noise
                print(start_row(lead_name, mode_name, name, t, noise))
            print(start_row(lead_name, mode_name, "ALL", total, noise_total))
            print()
    print("columns as above; cut = detected utterances whose audio misses the start of the")
    print("speech; on = onset latency, decision - true start of speech (ms)")
    print()


def start_row(lead: str, mode: str, condition: str, t: Tally, noise: int) -> str:
    """One row of the stream-start table."""
    return (
        f"{lead:<6} {mode:<6} {condition:<11} {t.detected:>3}/{t.clips:<3} "
        f"{t.false_starts:>6} {noise:>6} {t.premature:>6} {t.cut:>4} {pct(t.end_errors_ms, 50)} "
        f"{pct([max(t.end_errors_ms, default=0)], 100)} {pct(t.onset_latencies_ms, 50)} "
        f"{pct([max(t.onset_latencies_ms, default=0)], 100)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/hebrew_audio"))
    args = parser.parse_args()
    if not espeak_available():
        print("espeak-ng is not installed", file=sys.stderr)
        return 2
    clips = build_clips(args.cache_dir)
    reference_power = float(np.mean([active_power(c.pcm16) for c in clips]))
    print(
        f"{len(clips)} clips ({len(SPLIT_UTTERANCES)} with a 250–350 ms mid-sentence pause), "
        f"{len(CONDITIONS)} conditions, speech level "
        f"{10 * np.log10(reference_power / 32768**2):.1f} dBFS"
    )
    cells: dict[tuple[int, str], Tally] = {}
    noise_starts: dict[tuple[int, str], int] = {}
    for cond_index, (name, snr_db, kind) in enumerate(CONDITIONS):
        variants = noisy_variants(clips, snr_db, kind)
        noise_only = noise_only_clip(cond_index, reference_power)
        for silence_ms in ENDPOINT_SILENCES_MS:
            tally = Tally()
            for clip, pcm16 in zip(clips, variants, strict=True):
                tally.merge(score_clip(clip, run_clip(pcm16_frames(pcm16), silence_ms)))
            cells[silence_ms, name] = tally
            noise_starts[silence_ms, name] = count_starts(
                run_clip(pcm16_frames(noise_only), silence_ms)
            )
    header = (
        f"{'silence_ms':>10} {'condition':<11} {'detect':>7} {'false':>6} {'noise':>6} "
        f"{'premat':>6} {'err p50':>7} {'err p90':>7} {'err max':>7} {'lat p50':>7}"
    )
    print(header)
    print("-" * len(header))
    recommended: int | None = None
    for silence_ms in ENDPOINT_SILENCES_MS:
        total = Tally()
        for name, _, _ in CONDITIONS:
            t = cells[silence_ms, name]
            total.merge(t)
            print(
                f"{silence_ms:>10} {name:<11} {t.detected:>3}/{t.clips:<3} {t.false_starts:>6} "
                f"{noise_starts[silence_ms, name]:>6} {t.premature:>6} "
                f"{pct(t.end_errors_ms, 50)} {pct(t.end_errors_ms, 90)} "
                f"{pct([max(t.end_errors_ms, default=0)], 100)} {pct(t.latencies_ms, 50)}"
            )
        noise_total = sum(noise_starts[silence_ms, n] for n, _, _ in CONDITIONS)
        print(
            f"{silence_ms:>10} {'ALL':<11} {total.detected:>3}/{total.clips:<3} "
            f"{total.false_starts:>6} {noise_total:>6} "
            f"{total.premature:>6} {pct(total.end_errors_ms, 50)} {pct(total.end_errors_ms, 90)} "
            f"{pct([max(total.end_errors_ms, default=0)], 100)} {pct(total.latencies_ms, 50)}"
        )
        print()
        reliable_premature = sum(cells[silence_ms, n].premature for n in RELIABLE_CONDITIONS)
        if recommended is None and reliable_premature == 0:
            recommended = silence_ms
    print("columns: detect = utterances with a start and an end; false = starts outside the")
    print("speech; noise = starts on an 8 s noise-only clip; premat = utterances ended before")
    print("their speech was over; err = detected end_ms - true end (ms); lat = decision - true end")
    print()
    print_stream_start(
        {
            no_lead: build_clips(args.cache_dir, no_lead=no_lead, extra=START_UTTERANCES)
            for no_lead in (False, True)
        },
        reference_power,
    )
    if recommended is None:
        print("no endpoint_silence_ms value avoided premature endpoints")
        return 1
    print(
        f"recommended DEFAULT_ENDPOINT_SILENCE_MS = {recommended} "
        f"(smallest value with no premature endpoint in {', '.join(RELIABLE_CONDITIONS)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
