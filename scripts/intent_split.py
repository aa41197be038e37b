"""Split the labelled caller utterances into a development half and a held-out half.

Run once, before any intent pattern was written for them:
``.venv/bin/python scripts/intent_split.py ALL.tsv``. Rows are
``moment<TAB>intent<TAB>text``. Rows sharing a text (the same words at two moments)
stay together; groups are shuffled with a fixed seed inside each intent and dealt
alternately, so both halves hold every intent and moment in the same proportions.
Writes ``voicebot/testing/data/intents_dev.tsv`` and ``intents_heldout.tsv``.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from pathlib import Path

SEED = 20261129
OUT_DIR = Path(__file__).resolve().parent.parent / "voicebot" / "testing" / "data"
HEADER = (
    "# Caller utterances as phone speech recognition writes them, labelled by what the caller\n"
    "# means at that moment of the call. moment: greeting (right after the agent's greeting),\n"
    "# pitch (while the agent explains the offer), slots (meeting times were offered),\n"
    "# closing (near the end: last ask, goodbye). Columns: moment<TAB>intent<TAB>text.\n"
)


def main() -> None:
    rows = [
        tuple(line.split("\t"))
        for line in Path(sys.argv[1]).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    groups: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for row in rows:
        groups[row[2]].append(row)
    by_intent: dict[str, list[str]] = defaultdict(list)
    for text, members in groups.items():
        by_intent[members[0][1]].append(text)
    rng = random.Random(SEED)
    halves: tuple[list[tuple[str, ...]], list[tuple[str, ...]]] = ([], [])
    turn = 0
    for intent in sorted(by_intent):
        texts = sorted(by_intent[intent])
        rng.shuffle(texts)
        for text in texts:
            halves[turn % 2].extend(groups[text])
            turn += 1
    for name, half in zip(("dev", "heldout"), halves, strict=True):
        body = "".join("\t".join(row) + "\n" for row in half)
        (OUT_DIR / f"intents_{name}.tsv").write_text(HEADER + body, encoding="utf-8")
        print(f"{name}: {len(half)} rows")


if __name__ == "__main__":
    main()
