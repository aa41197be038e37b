"""Print the intent accuracy on the development half and the held-out half.

Run: ``.venv/bin/python scripts/intent_eval.py [--dev-only] [--quiet]``.
Development misses are printed (``--quiet`` hides them); held-out misses never are,
so nobody can tune on them: the held-out half prints its accuracy only, and
``--dev-only`` does not score it at all (use it while tuning; every held-out
measurement is a figure to report).
"""

from __future__ import annotations

import sys

from voicebot.testing.intent_eval import evaluate


def main() -> None:
    args = sys.argv[1:]
    halves = ("dev",) if "--dev-only" in args else ("dev", "heldout")
    for half in halves:
        score = evaluate(half)  # type: ignore[arg-type]
        print(f"{half}: {score.accuracy:.1%} ({score.correct}/{score.total})")
        if half == "dev" and "--quiet" not in args:
            for miss in score.misses:
                case = miss.case
                print(f"  [{case.moment}] {case.text!r}: expected {case.intent}, got {miss.got}")


if __name__ == "__main__":
    main()
