"""A character n-gram classifier of caller intent: the rules' second opinion.

Owns :func:`model_intent`: the sound-alike key of an utterance (see
:func:`voicebot.brain.normalize.soundalike`) is cut into character n-grams inside each
word (2-5 characters, words padded with a space, as scikit-learn's ``char_wb``
analyser does), weighted by sublinear TF-IDF, L2-normalised, joined with a one-hot
moment of the call, and scored by a multinomial logistic regression. Misspelt,
merged or reworded speech still shares most n-grams with the development rows it was
fitted on, where a regular expression needs the exact word.

The fitted weights ship in ``data/intent_model.npz`` (written by
``scripts/train_intent_model.py`` from the development half of the labelled set only,
never the held-out half); inference is numpy only, about 0.1 ms per utterance, and
scikit-learn is needed only to refit. The file records the SHA-256 of the development
rows it was fitted on, so a test fails when the rows change and the model does not.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

MODEL_PATH = Path(__file__).parent / "data" / "intent_model.npz"
MOMENTS: tuple[str, ...] = ("greeting", "pitch", "slots", "closing")


@dataclass(frozen=True, slots=True)
class ModelGuess:
    """The model's most probable intent and its probability (0-1)."""

    intent: str
    probability: float


@dataclass(frozen=True, slots=True)
class IntentModel:
    """Fitted weights: n-gram vocabulary and IDF, class weights (classes x features)."""

    vocabulary: dict[str, int]
    idf: npt.NDArray[np.float64]
    ngram_range: tuple[int, int]
    coef: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]
    classes: tuple[str, ...]
    moment_weight: float
    dev_sha256: str

    def guess(self, key: str, moment: str) -> ModelGuess:
        """The most probable intent of sound-alike ``key`` said at ``moment``."""
        counts = Counter(
            index
            for gram in char_wb_ngrams(key, self.ngram_range)
            if (index := self.vocabulary.get(gram)) is not None
        )
        logits = self.intercept.copy()
        if counts:
            indices = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            values = (1.0 + np.log(tf)) * self.idf[indices]
            values /= math.sqrt(float(values @ values))
            logits += self.coef[:, indices] @ values
        if moment in MOMENTS:
            logits += (
                self.moment_weight * self.coef[:, len(self.vocabulary) + MOMENTS.index(moment)]
            )
        logits -= logits.max()
        probabilities = np.exp(logits)
        best = int(probabilities.argmax())
        return ModelGuess(self.classes[best], float(probabilities[best] / probabilities.sum()))


def char_wb_ngrams(text: str, ngram_range: tuple[int, int]) -> list[str]:
    """Character n-grams inside space-padded words, exactly as scikit-learn's ``char_wb``."""
    low, high = ngram_range
    grams: list[str] = []
    for word in text.split():
        padded = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            grams.append(padded[offset : offset + n])
            while offset + n < len(padded):
                offset += 1
                grams.append(padded[offset : offset + n])
            if offset == 0:  # a word shorter than n is counted once
                break
    return grams


def load_model(path: Path = MODEL_PATH) -> IntentModel:
    """Read fitted weights; raises ``OSError`` / ``KeyError`` on a missing or foreign file."""
    with np.load(path, allow_pickle=False) as data:
        vocabulary = [str(gram) for gram in data["vocabulary"]]
        low, high = (int(n) for n in data["ngram_range"])
        return IntentModel(
            vocabulary={gram: index for index, gram in enumerate(vocabulary)},
            idf=data["idf"].astype(np.float64),
            ngram_range=(low, high),
            coef=data["coef"].astype(np.float64),
            intercept=data["intercept"].astype(np.float64),
            classes=tuple(str(name) for name in data["classes"]),
            moment_weight=float(data["moment_weight"]),
            dev_sha256=str(data["dev_sha256"]),
        )


@cache
def shipped_model() -> IntentModel:
    """The model shipped with the package, read once per process."""
    return load_model()


def model_intent(key: str, moment: str) -> ModelGuess:
    """The shipped model's guess for sound-alike ``key`` said at ``moment``."""
    return shipped_model().guess(key, moment)
