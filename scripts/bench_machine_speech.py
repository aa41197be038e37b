"""Precision and recall of the Hebrew voicemail/announcement check on the first utterance.

Reads the labelled set ``voicebot/testing/data/machine_speech.tsv`` (machine: mailbox
greetings and network announcements; human: how people answer a call) and prints the
confusion counts, precision and recall of :func:`voicebot.brain.machine_speech.machine_kind`
with ``machine`` as the positive class, and every miss. The check reads transcripts, so
the set is text: the espeak-ng audio of these lines through the STT simulator comes back
as the same registered text and would add nothing; a real recogniser's spellings are
what the folding (niqqud, punctuation, final letters) is for.

    python scripts/bench_machine_speech.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voicebot.brain.machine_speech import machine_kind

DATA = Path(__file__).resolve().parent.parent / "voicebot/testing/data/machine_speech.tsv"


def load(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, _, text = line.partition("\t")
        rows.append((label.strip(), text.strip()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="or machine_speech_heldout.tsv")
    args = parser.parse_args()
    rows = load(args.data)
    tp = fp = fn = tn = 0
    misses: list[str] = []
    for label, text in rows:
        kind = machine_kind(text)
        predicted = kind is not None
        actual = label == "machine"
        if predicted and actual:
            tp += 1
        elif predicted:
            fp += 1
            misses.append(f"false machine ({kind}): {text}")
        elif actual:
            fn += 1
            misses.append(f"missed machine: {text}")
        else:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(f"labelled set: {args.data.name}, {len(rows)} utterances ({tp + fn} machine)")
    print(f"tp={tp} fp={fp} fn={fn} tn={tn}")
    print(f"precision={precision:.3f} recall={recall:.3f}")
    for miss in misses:
        print(miss)


if __name__ == "__main__":
    main()
