"""k-fold cross-validation of intent detection on the development half: the honest estimate.

Run: ``.venv/bin/python scripts/intent_cv.py [--folds 5] [--repeats 2] [--misses]``
(needs scikit-learn). The development rows are dealt into folds (stratified by intent,
rows sharing a text kept together); for each fold the n-gram model is refitted on the
other folds plus the extra training utterances (``TRAIN_FILES``) and the whole
detector (patterns + that model) is scored on the fold it never saw. Prints the
cross-validated accuracy of the detector, of the model alone, and of the patterns alone
(model switched off). The held-out half is never read.

The patterns were written while reading development misses, so the detector's CV figure
still flatters the pattern part; it is honest about the model, which is what over-fits.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from train_intent_model import fit, key_of

from voicebot.brain import intent_model
from voicebot.brain.intent_model import IntentModel, ModelGuess, load_model
from voicebot.testing.intent_eval import Labelled, classify, load, load_extra

SEED = 20261129


class _Silent:
    """A model that never speaks up: the detector runs on its patterns alone (words are still
    mended with the fold's training words)."""

    def __init__(self, model: IntentModel) -> None:
        self.repair = model.repair

    def guess(self, key: str, moment: str) -> ModelGuess:
        return ModelGuess("unclear", 0.0)


@contextmanager
def _using(model: IntentModel | _Silent) -> Iterator[None]:
    with mock.patch.object(intent_model, "shipped_model", lambda: model):
        yield


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--misses", action="store_true", help="print the development misses")
    args = parser.parse_args()
    dev = load("dev")
    extra = load_extra()
    labels = [row.intent for row in dev]
    groups = [row.text for row in dev]
    detector = model_only = patterns_only = total = 0
    misses: dict[Labelled, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fold.npz"
        for repeat in range(args.repeats):
            splitter = StratifiedGroupKFold(
                n_splits=args.folds, shuffle=True, random_state=SEED + repeat
            )
            for train_idx, test_idx in splitter.split(np.zeros(len(dev)), labels, groups):
                fit([dev[i] for i in train_idx] + list(extra), path, "cv")
                model = load_model(path)
                fold = [dev[i] for i in test_idx]
                with _using(model):
                    for row in fold:
                        got = classify(row)
                        detector += got == row.intent
                        if got != row.intent:
                            misses[row] = got
                model_only += sum(model.guess(key_of(r), r.moment).intent == r.intent for r in fold)
                with _using(_Silent(model)):
                    patterns_only += sum(classify(r) == r.intent for r in fold)
                total += len(fold)
    print(
        f"{args.folds}-fold CV x{args.repeats} on {len(dev)} development rows "
        f"(+{len(extra)} training-only rows in every fit):"
    )
    print(f"  detector (patterns + model): {detector / total:.1%} ({detector}/{total})")
    print(f"  model alone:                 {model_only / total:.1%}")
    print(f"  patterns alone:              {patterns_only / total:.1%}")
    if args.misses:
        for row, got in sorted(misses.items(), key=lambda item: (item[0].intent, item[0].text)):
            print(f"  [{row.moment}] {row.text!r}: expected {row.intent}, got {got}")


if __name__ == "__main__":
    main()
