"""Print the intent accuracy on the development half and the held-out sets.

Run: ``.venv/bin/python scripts/intent_eval.py [--dev-only] [--quiet]``.
Development misses are printed (``--quiet`` hides them); held-out misses never are,
so nobody can tune on them: held-out sets print their accuracy only, and
``--dev-only`` does not score them at all (use it while tuning; every held-out
measurement is a figure to report).

Two held-out sets are scored: ``heldout_v2`` (``intents_heldout_v2.tsv``) is the
honest figure, written blind by someone who never read the classifier or its data;
``heldout_v1`` (``intents_heldout.tsv``) was seen by the people who tuned the
classifier and is printed for history only.
"""

from __future__ import annotations

import sys

from voicebot.testing.intent_eval import evaluate

# The name each set is reported under: the first held-out half is history now.
REPORTED_AS = {"dev": "dev", "heldout_v2": "heldout_v2", "heldout": "heldout_v1"}


def main() -> None:
    args = sys.argv[1:]
    halves = ("dev",) if "--dev-only" in args else ("dev", "heldout_v2", "heldout")
    for half in halves:
        score = evaluate(half)  # type: ignore[arg-type]
        print(f"{REPORTED_AS[half]}: {score.accuracy:.1%} ({score.correct}/{score.total})")
        if half == "dev" and "--quiet" not in args:
            for miss in score.misses:
                case = miss.case
                print(f"  [{case.moment}] {case.text!r}: expected {case.intent}, got {miss.got}")


if __name__ == "__main__":
    main()
