"""Print the intent accuracy on the development half and the held-out half, and every miss.

Run: ``.venv/bin/python scripts/intent_eval.py [--quiet]`` (``--quiet`` hides the misses).
Patterns may be tuned on development misses only; held-out misses are printed so they
can be reported, not fixed.
"""

from __future__ import annotations

import sys

from voicebot.testing.intent_eval import evaluate


def main() -> None:
    quiet = "--quiet" in sys.argv[1:]
    for half in ("dev", "heldout"):
        score = evaluate(half)
        print(f"{half}: {score.accuracy:.1%} ({score.correct}/{score.total})")
        if not quiet:
            for miss in score.misses:
                case = miss.case
                print(f"  [{case.moment}] {case.text!r}: expected {case.intent}, got {miss.got}")


if __name__ == "__main__":
    main()
