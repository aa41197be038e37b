"""Print the intent accuracy on the development sets and the held-out set.

Run: ``.venv/bin/python scripts/intent_eval.py [--dev-only] [--quiet]``.

Development sets (``dev``, ``dev_v1``, ``dev_v2``, ``dev_v3``; see
:mod:`voicebot.testing.intent_eval`)
print their accuracy and their misses (``--quiet`` hides the misses). ``dev_v2`` was the
blind held-out set until it was measured (91.0%); a set measured and then read is spent,
so it is development data now and its misses are printed like the others.

The held-out sets (``heldout_v3``, ``heldout_v4``, written blind by sessions that never saw the
classifier) print their accuracy only, never their misses, and are skipped while absent.
``--dev-only`` never reads them: use it while tuning, so that every held-out figure is one
to report.
"""

from __future__ import annotations

import sys

from voicebot.testing.intent_eval import DEV_SETS, HELDOUT_SETS, REPORTED_AS, evaluate, path_of


def main() -> None:
    args = sys.argv[1:]
    for half in DEV_SETS:
        score = evaluate(half)
        print(f"{REPORTED_AS[half]}: {score.accuracy:.1%} ({score.correct}/{score.total})")
        if "--quiet" not in args:
            for miss in score.misses:
                case = miss.case
                print(f"  [{case.moment}] {case.text!r}: expected {case.intent}, got {miss.got}")
    if "--dev-only" in args:
        return
    for half in HELDOUT_SETS:
        if not path_of(half).exists():
            print(f"{REPORTED_AS[half]}: not landed yet")
            continue
        score = evaluate(half)  # accuracy only: nobody tunes on held-out misses
        print(f"{REPORTED_AS[half]}: {score.accuracy:.1%} ({score.correct}/{score.total})")


if __name__ == "__main__":
    main()
