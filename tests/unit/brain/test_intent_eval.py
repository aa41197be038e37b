"""The labelled intent evaluation (voicebot/testing/data): every development set meets its
threshold and none of them is fitted on.

``heldout`` (v1) and ``heldout_v2`` were held out once; both were measured and read, so
they are development sets now (reported as dev_v1 and dev_v2), scored with their misses
printed. v2's rows must still never be training rows: the model learns each kind of miss
from rows written anew, so v2 keeps measuring phrasings it never saw (v1 already shares
105 short everyday answers such as "כן" or "מה אמרת" with the training-only rows). ``dev_v3``
was written from LABELLING.md beside a sister batch that became training rows; the two
writers worked apart, so they share everyday texts ("הלו", "כן") but no row was copied. The held-out
set is ``heldout_v3``, written blind by another session and measured once by the lead with
``scripts/intent_eval.py``; no test here reads it, so nobody sees its rows while tuning.
Thresholds sit just under today's figures (scripts/intent_eval.py --dev-only), so a
regression fails here.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from voicebot.brain.intents import INTENTS
from voicebot.testing.intent_eval import (
    DEV_SETS,
    MOMENT_STAGE,
    REPORTED_AS,
    Half,
    evaluate,
    load,
    load_training,
)

MIN_ACCURACY: dict[Half, float] = {
    "dev": 0.985,
    "heldout": 0.975,
    "heldout_v2": 0.98,
    "dev_v3": 0.985,
}
MIN_ROWS = 400
MIN_V2_ROWS = 300
MIN_V3_ROWS = 500


def test_data_set_is_large_labelled_and_split() -> None:
    """At least 400 rows in two halves sharing no text, every intent and moment in each half."""
    dev, heldout = load("dev"), load("heldout")
    assert len(dev) + len(heldout) >= MIN_ROWS
    assert not {c.text for c in dev} & {c.text for c in heldout}
    for half in (dev, heldout):
        assert {c.intent for c in half} == set(INTENTS)
        assert {c.moment for c in half} == set(MOMENT_STAGE)


def test_v2_set_is_labelled_with_every_intent_and_moment() -> None:
    """The second development set (the spent blind set): 300+ rows, every intent and moment."""
    v2 = load("heldout_v2")
    assert len(v2) >= MIN_V2_ROWS
    assert {c.intent for c in v2} == set(INTENTS)
    assert {c.moment for c in v2} == set(MOMENT_STAGE)


def test_v3_set_is_labelled_with_every_intent_and_moment() -> None:
    """The third development set (written from LABELLING.md): 500+ rows, every intent and
    moment."""
    v3 = load("dev_v3")
    assert len(v3) >= MIN_V3_ROWS
    assert {c.intent for c in v3} == set(INTENTS)
    assert {c.moment for c in v3} == set(MOMENT_STAGE)


def test_v2_shares_no_text_with_training_rows() -> None:
    """No v2 text (punctuation and spacing ignored) is a row the model is fitted on, the
    training-only rows included: its misses are fixed with rows written anew, never copied."""
    fitted = {_key(c.text) for c in load_training()}
    assert not [c.text for c in load("heldout_v2") if _key(c.text) in fitted]


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", "", text).split())


@pytest.mark.parametrize("half", DEV_SETS)
def test_development_accuracy(half: Half) -> None:
    """Each development set is understood as labelled at or above its threshold; misses are
    printed as confusion counts."""
    score = evaluate(half)
    _print(
        REPORTED_AS[half],
        score.accuracy,
        [(m.case.moment, m.case.text, m.case.intent, m.got) for m in score.misses],
    )
    assert score.accuracy >= MIN_ACCURACY[half], f"{REPORTED_AS[half]} {score.accuracy:.1%}"


def _print(half: str, accuracy: float, misses: list[tuple[str, str, str, str]]) -> None:
    print(f"\n{half}: {accuracy:.1%}")
    confusions = Counter((expected, got) for _, _, expected, got in misses)
    for (expected, got), count in confusions.most_common():
        print(f"  {expected:>16} -> {got:<16} x{count}")
