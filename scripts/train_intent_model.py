"""Fit the character n-gram intent model on the training rows and write it to the package.

Run: ``.venv/bin/python scripts/train_intent_model.py`` (needs scikit-learn, a dev
dependency). Reads only the training rows (``intents_dev.tsv`` plus the training-only files
of ``intent_eval.TRAIN_FILES``: ``intents_train.tsv`` and the guide-written batches
``intents_train_a/c/d/e/g/h/i/j/k/l/m/n.tsv``; dev_v1, dev_v2, dev_v3 and the held-out set are
never read here), fits TF-IDF
over ``char_wb`` 2-5-grams of the sound-alike key plus a one-hot moment and a
multinomial logistic regression, writes ``voicebot/brain/data/intent_model.npz``, then
checks that the package's numpy inference gives scikit-learn's probabilities on every
training row (exits 1 otherwise). :func:`fit` is reused by ``scripts/intent_cv.py``.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from voicebot.brain.hebrew_numbers import WORD_VALUES
from voicebot.brain.intent_model import MODEL_PATH, MOMENTS, IntentModel, load_model, word_key
from voicebot.brain.intent_patterns import INTENT_PATTERNS
from voicebot.brain.normalize import normalize, soundalike
from voicebot.brain.time_grammar import DAY_WORD_OFFSETS, MONTHS, RELATIVE_UNITS_MIN, WEEKDAYS
from voicebot.testing.intent_eval import Labelled, load_training, training_sha256

NGRAM_RANGE = (2, 5)
REGULARISATION_C = 10.0  # inverse L2 strength: the rows are few, the n-grams many
MOMENT_WEIGHT = 1.0  # value of the one-hot moment feature
MAX_ITERATIONS = 3000
TOLERANCE = 1e-9
WORD_RE = re.compile(r"[\u05d0-\u05ea]+|[a-z]+")


def key_of(row: Labelled) -> str:
    """The sound-alike key the model reads for a row, as :mod:`intents` computes it."""
    return soundalike(normalize(row.text))


def word_counts(rows: Sequence[Labelled]) -> Counter[str]:
    """How often each word (final letters folded, as written) occurs in the rows; the words
    written out in the intent patterns and the number and time words count as seen once
    more, so they are never split."""
    counts = Counter(word_key(word) for row in rows for word in WORD_RE.findall(row.text.lower()))
    sources = [source for patterns in INTENT_PATTERNS.values() for source, _ in patterns]
    sources += [*WORD_VALUES, *WEEKDAYS, *MONTHS, *RELATIVE_UNITS_MIN, *DAY_WORD_OFFSETS]
    counts.update(word_key(word) for source in sources for word in WORD_RE.findall(source))
    return counts


def fit(rows: Sequence[Labelled], path: Path, digest: str) -> LogisticRegression:
    """Fit on ``rows``, write the weights to ``path``; returns the scikit-learn classifier."""
    keys = [key_of(row) for row in rows]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, sublinear_tf=True)
    moments = csr_matrix(
        np.array([[MOMENT_WEIGHT if row.moment == m else 0.0 for m in MOMENTS] for row in rows])
    )
    features = hstack([vectorizer.fit_transform(keys), moments]).tocsr()
    classifier = LogisticRegression(C=REGULARISATION_C, max_iter=MAX_ITERATIONS)
    classifier.fit(features, [row.intent for row in rows])
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    words = sorted(word_counts(rows).items())
    path.parent.mkdir(exist_ok=True)
    np.savez_compressed(
        path,
        vocabulary=np.array(vocabulary),
        idf=vectorizer.idf_.astype(np.float32),
        ngram_range=np.array(NGRAM_RANGE),
        coef=classifier.coef_.astype(np.float32),
        intercept=classifier.intercept_.astype(np.float32),
        classes=np.array(classifier.classes_),
        moment_weight=np.array(MOMENT_WEIGHT),
        dev_sha256=np.array(digest),
        words=np.array([word for word, _ in words]),
        word_counts=np.array([count for _, count in words], dtype=np.int32),
    )
    classifier.features_ = features  # kept for the inference check below
    return classifier


def check_inference(
    rows: Sequence[Labelled], model: IntentModel, classifier: LogisticRegression
) -> float:
    """Largest probability difference between numpy inference and scikit-learn; exits on a
    different intent."""
    expected = classifier.predict_proba(classifier.features_)
    worst = 0.0
    for row, probabilities in zip(rows, expected, strict=True):
        guess = model.guess(key_of(row), row.moment)
        best = int(probabilities.argmax())
        if guess.intent != classifier.classes_[best]:
            print(
                f"inference differs on {row.text!r}: {guess.intent} != {classifier.classes_[best]}"
            )
            sys.exit(1)
        worst = max(worst, abs(guess.probability - probabilities[best]))
    return worst


def main() -> None:
    rows = load_training()
    classifier = fit(rows, MODEL_PATH, training_sha256())
    model = load_model(MODEL_PATH)
    worst = check_inference(rows, model, classifier)
    fitted = sum(model.guess(key_of(r), r.moment).intent == r.intent for r in rows)
    size_kb = MODEL_PATH.stat().st_size / 1024
    print(
        f"{len(rows)} rows, {len(model.vocabulary)} n-grams, {size_kb:.0f} KiB; numpy matches "
        f"scikit-learn (max probability difference {worst:.1e}); fit {fitted}/{len(rows)}"
    )


if __name__ == "__main__":
    main()
