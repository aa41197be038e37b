"""Evaluate adaptive endpointing on labelled Hebrew utterances with pauses inside them.

Each utterance is a list of parts joined by known pauses (espeak-ng, as in
scripts/vad_eval.py), with line noise at several SNRs. The Endpointer runs with
speculation at ``--speculate-ms``; at each pause the words heard so far (the parts
whose audio ended before it: an ideal recogniser, returning ``--stt-ms`` later, as the
batch STT of the speculative path does) are classified by
:func:`voicebot.brain.turn_end.classify_turn_end` and set the end-of-turn silence. Per
configuration (short / answer / default / long silence, or silence alone) it prints
premature cut-offs (a turn ended inside an utterance's pause; the adaptive ones are listed
below the table) and endpoint delay (decision time - true end of speech, p50 / p90) over
utterances ended correctly.

Usage: .venv/bin/python scripts/endpoint_eval.py [--stt-ms 250]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from voicebot.audio.codec import FRAME_MS
from voicebot.audio.endpointing import Endpointer, SpeechEnded, SpeechPaused, SpeechResumed
from voicebot.brain.turn_end import TurnEnd, classify_turn_end
from voicebot.loadtest.report import percentile
from voicebot.testing.hebrew_audio import (
    duration_ms,
    espeak_available,
    mix_noise,
    pcm16_frames,
    silence,
    synthesize_hebrew,
)

# (parts, pause between parts in ms): a caller's turn with pauses inside it.
UTTERANCES: Final[tuple[tuple[tuple[str, ...], int], ...]] = (
    # Hesitation before the content: must wait.
    (("אממ", "אני לא בטוח שזה מתאים לנו"), 700),
    (("רגע", "תן לי לבדוק ביומן"), 900),
    (("כאילו", "כמה זה עולה בערך?"), 600),
    (("אז", "אולי ביום חמישי"), 800),
    (("אני חושב ש", "זה יכול לעבוד"), 700),
    (("אפשר לקבוע ל", "יום ראשון בבוקר"), 800),
    (("יש לנו בערך עשרים עובדים ו", "עוד שלושה פרילנסרים"), 600),
    (("אני צריך לדבר עם", "השותף שלי קודם"), 700),
    (("אממ", "רגע", "כן, אפשר"), 600),
    (("בגלל ש", "אנחנו כבר עובדים עם מישהו"), 900),
    # Content, then more content after a shorter pause.
    (("מחר אני לא יכול", "אולי ביום חמישי"), 450),
    (("זה נשמע טוב", "כמה זה עולה?"), 400),
    (("אני בנהיגה עכשיו", "תתקשר בעוד שעה"), 400),
    (("כן, אני מעוניין", "אבל רק אחרי החגים"), 350),
    # Complete turns: should end soon.
    (("כן",), 0),
    (("לא",), 0),
    (("תודה",), 0),
    (("בטח",), 0),
    (("לא תודה",), 0),
    (("מי זה?",), 0),
    (("כמה זה עולה?",), 0),
    (("מחר בעשר",), 0),
    (("ביום שלישי בשלוש",), 0),
    (("כן, אפשר לדבר עכשיו",), 0),
    (("יש לנו בערך עשרים עובדים",), 0),
    (("תשלח לי את הפרטים בווטסאפ",), 0),
)
CONDITIONS: Final = (("clean", None), ("20 dB", 20.0), ("10 dB", 10.0))
# (label, short, answer, default, long) silences in ms; short 0 = silence alone.
CONFIGS: Final = (
    ("silence 700 (old default)", 0, 0, 700, 0),
    ("silence 500", 0, 0, 500, 0),
    ("adaptive 300/300/700/1200", 300, 300, 700, 1200),
    ("adaptive 300/400/700/1200", 300, 400, 700, 1200),
    ("adaptive 300/450/500/1200", 300, 450, 500, 1200),
    ("adaptive 300/450/600/1200", 300, 450, 600, 1200),
    ("adaptive 300/450/700/1200", 300, 450, 700, 1200),
    ("adaptive 300/500/700/1200", 300, 500, 700, 1200),
    ("adaptive 400/450/700/1200", 400, 450, 700, 1200),
    ("adaptive 300/450/700/1000", 300, 450, 700, 1000),
)
LEAD_MS: Final = 800
TRAIL_MS: Final = 2000
SEED: Final = 14


@dataclass(frozen=True)
class Clip:
    text: str
    pcm16: bytes
    part_ends_ms: tuple[float, ...]
    parts: tuple[str, ...]

    @property
    def end_ms(self) -> float:
        return self.part_ends_ms[-1]


@dataclass
class Tally:
    clips: int = 0
    premature: int = 0
    missed: int = 0
    delays_ms: list[float] = field(default_factory=list)


def build_clip(parts: tuple[str, ...], pause_ms: int, cache_dir: Path) -> Clip:
    audio = silence(LEAD_MS)
    ends: list[float] = []
    for index, part in enumerate(parts):
        if index:
            audio += silence(pause_ms)
        audio += synthesize_hebrew(part, cache_dir=cache_dir)
        ends.append(duration_ms(audio))
    return Clip(" … ".join(parts), audio + silence(TRAIL_MS), tuple(ends), parts)


def words_before(clip: Clip, at_ms: float) -> str:
    return " ".join(p for p, end in zip(clip.parts, clip.part_ends_ms, strict=True) if end <= at_ms)


def run(
    clip: Clip, pcm16: bytes, config: tuple[str, int, int, int, int], args: argparse.Namespace
) -> Tally:
    _, short_ms, answer_ms, default_ms, long_ms = config
    adaptive = short_ms > 0
    endpointer = Endpointer(
        endpoint_silence_ms=default_ms, speculate_silence_ms=args.speculate_ms if adaptive else 0
    )
    tally = Tally(clips=1)
    pending: tuple[int, int] | None = None  # (apply at stream ms, silence ms)
    for frame in pcm16_frames(pcm16):
        event = endpointer.process(frame)
        now_ms = endpointer.stream_ms
        if pending is not None and now_ms >= pending[0]:
            endpointer.set_turn_silence_ms(pending[1])
            pending = None
        if isinstance(event, SpeechPaused):
            kind = classify_turn_end(words_before(clip, event.end_ms + FRAME_MS))
            silence_ms = {
                TurnEnd.COMPLETE: short_ms,
                TurnEnd.ANSWERED: answer_ms,
                TurnEnd.HESITANT: long_ms,
                TurnEnd.OPEN: default_ms,
            }[kind]
            pending = (now_ms + args.stt_ms, silence_ms)
        elif isinstance(event, SpeechResumed):
            pending = None
        elif isinstance(event, SpeechEnded):
            if now_ms < clip.end_ms:
                tally.premature += 1
            else:
                tally.delays_ms.append(now_ms - clip.end_ms)
            return tally
    tally.missed += 1
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/hebrew_audio"))
    parser.add_argument("--stt-ms", type=int, default=250)
    parser.add_argument("--speculate-ms", type=int, default=120)
    args = parser.parse_args()
    if not espeak_available():
        print("espeak-ng is not installed", file=sys.stderr)
        return 1
    clips = [build_clip(parts, pause, args.cache_dir) for parts, pause in UTTERANCES]
    print(
        f"{len(clips)} utterances ({sum(len(c.parts) > 1 for c in clips)} with pauses inside)"
        f" x {len(CONDITIONS)} noise conditions; recogniser answers {args.stt_ms} ms after"
        f" the {args.speculate_ms} ms pause\n"
    )
    print("| configuration | premature cut-offs | endpoint delay p50 | p90 | missed |")
    print("| --- | --- | --- | --- | --- |")
    cut: list[str] = []
    for config in CONFIGS:
        total = Tally()
        for index, clip in enumerate(clips):
            for condition, snr in CONDITIONS:
                pcm = clip.pcm16 if snr is None else mix_noise(clip.pcm16, snr, seed=SEED + index)
                tally = run(clip, pcm, config, args)
                total.clips += 1
                total.premature += tally.premature
                total.missed += tally.missed
                total.delays_ms += tally.delays_ms
                if tally.premature and config[1]:
                    cut.append(f"{config[0]}: {clip.text} ({condition})")
        p50 = percentile(total.delays_ms, 50)
        p90 = percentile(total.delays_ms, 90)
        print(
            f"| {config[0]} | {total.premature}/{total.clips} | {p50:.0f} ms | {p90:.0f} ms |"
            f" {total.missed} |"
        )
    print("\nPremature cut-offs, adaptive:" if cut else "\nNo adaptive premature cut-off.")
    for line in cut:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
