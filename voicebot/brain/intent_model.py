"""A character n-gram classifier of caller intent: the rules' second opinion.

Owns :func:`model_intent`: the sound-alike key of an utterance (see
:func:`voicebot.brain.normalize.soundalike`) is cut into character n-grams inside each
word (2-5 characters, words padded with a space, as scikit-learn's ``char_wb``
analyser does), weighted by sublinear TF-IDF, L2-normalised, joined with a one-hot
moment of the call, and scored by a multinomial logistic regression. Misspelt,
merged or reworded speech still shares most n-grams with the development rows it was
fitted on, where a regular expression needs the exact word.

The fitted weights ship in ``data/intent_model.npz`` (written by
``scripts/train_intent_model.py`` from the first development set and the training-only
rows, never a set that is scored); inference is numpy only, about 0.1 ms per utterance, and
scikit-learn is needed only to refit. The file records the SHA-256 of the development
rows it was fitted on, so a test fails when the rows change and the model does not.

The file also ships the words of the training rows and how often each occurs;
:meth:`IntentModel.repair` uses them to undo the two spacing errors recognisers make:
two words glued into one ("כמהזה", "תתקשרומחר") and one word cut in two ("מעוני ין").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voicebot.brain.normalize import FILLERS

MODEL_PATH = Path(__file__).parent / "data" / "intent_model.npz"
MOMENTS: tuple[str, ...] = ("greeting", "pitch", "slots", "closing")
MIN_WORD_COUNT = 2  # a word seen at least this often in the training rows counts as known
MIN_PART_CHARS = 2  # neither half of a split glued word is shorter than this
# A known token is still split when both halves are this many times as frequent as it.
SPLIT_OVER_KNOWN_RATIO = 10
_FINALS = str.maketrans("ךםןףץ", "כמנפצ")
# Letters recognisers write for one another in Israeli speech (LABELLING.md lists them).
_CONFUSED: dict[str, str] = {
    "א": "הע", "ה": "אע", "ע": "אה", "כ": "חק", "ח": "כ", "ק": "כ", "ט": "ת", "ת": "ט",
    "ו": "ב", "ב": "ו", "ס": "ש", "ש": "ס",
}  # fmt: skip
_LETTERS = "אבגדהוזחטיכלמנסעפצקרשת"
# "לא" heard as "לה" / "לו" ("לה מעוניין"): taken as "לא" when it opens the answer.
_MISHEARD_NO = frozenset({"לה", "לו", "לוא"})
# Discourse words LABELLING.md counts as fillers: the answer opens after them ("בקיצור לו
# מעוניין").
_OPENING_FILLERS = frozenset({"בקיצור", "רגע", "תשמע", "תשמעי", "תקשיב", "תקשיבי", "האמת"})
# Inside the answer "לו" is "לא" after these words ("ממש לו", "עוד לו", "זה לו העסק") and
# "בלו" is "בלא" before "להתקשר" ("רשום בלו להתקשר").
_NO_AFTER = frozenset({"ממש", "עוד", "זה", "בכלל", "פשוט", "כבר", "ממס"})
# A letter that never ends a word's prefix: alone after a word it is that word's cut-off end
# ("בי י" -> "ביי", "ארב ע" -> "ארבע"); written as a final form it always is ("שלו ם").
_PREFIX_LETTERS = frozenset("ובלכמשה")
_FINAL_FORMS = frozenset("ךםןףץ")
MIN_CORRECTED_CHARS = 3  # shorter unknown tokens are left alone: too many words lie one letter away
_HEBREW_WORD_RE = re.compile(r"[\u05d0-\u05ea]+")


_ELONGATED_RE = re.compile(r"([\u05d0-\u05ea])\1{2,}")
_DOUBLED_RE = re.compile(r"([\u05d0-\u05ea])\1")


def word_key(token: str) -> str:
    """A token as the word counts are keyed: final letters folded, a letter stretched three
    times or more ("אמממ", "ביייי") cut to two."""
    return _ELONGATED_RE.sub(r"\1\1", token.translate(_FINALS))


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
    word_counts: dict[str, int]

    def known(self, word: str) -> bool:
        """Whether ``word`` (see :func:`word_key`) occurs often enough in the training rows."""
        return self.word_counts.get(word, 0) >= MIN_WORD_COUNT

    def repair(self, text: str) -> str:
        """``text`` with glued words split and cut words joined, where the training words say so.

        Only Hebrew-letter tokens that are not known words are touched (a training row may
        itself carry a glued word, seen once), and
        two neighbours when one of them is not a known word: an unseen token that is two
        words seen, one of them known, becomes those two ("כמהזה" -> "כמה זה"; the most frequent
        pair wins), and two neighbours of which one is unknown become one word when they
        make a known one ("מעוני ין" -> "מעוניין"). An unseen token that is a known word with a
        letter doubled, a letter confused (three letters or more) or its last letter dropped
        (four or more) becomes that word ("שלוםם" -> "שלום", "נסמע" -> "נשמע", "מעוניי" ->
        "מעוניין"). An opening "לה" / "לו" / "לוא" is "לא". Anything else is returned as is.
        """
        tokens = self._join_cut_letters(text.split())
        opening = next(
            (
                i
                for i, t in enumerate(tokens)
                if word_key(t) not in FILLERS and t not in _OPENING_FILLERS
            ),
            None,
        )
        if opening is not None and word_key(tokens[opening]) in _MISHEARD_NO:
            tokens[opening] = "לא"
        for i in range(1, len(tokens)):
            if tokens[i] == "לו" and tokens[i - 1] in _NO_AFTER:
                tokens[i] = "לא"
            elif tokens[i] == "בלו" and tokens[i + 1 : i + 2] == ["להתקשר"]:
                tokens[i] = "בלא"
        out: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            key = word_key(token)
            if i + 1 < len(tokens):
                nxt = word_key(tokens[i + 1])
                joined = key + nxt
                if (
                    _HEBREW_WORD_RE.fullmatch(joined)
                    and self.known(joined)
                    and (
                        not (self.known(key) and self.known(nxt))
                        # Halves the training rows carry as noise ("מעוני ין" is a row).
                        or self.word_counts[joined]
                        >= SPLIT_OVER_KNOWN_RATIO
                        * max(self.word_counts.get(key, 0), self.word_counts.get(nxt, 0))
                    )
                ):
                    out.append(joined)
                    i += 2
                    continue
            if _HEBREW_WORD_RE.fullmatch(key) and not self.known(key):
                out.extend(self._split(key) or self._correct(key) or (token,))
            elif _HEBREW_WORD_RE.fullmatch(key) and (parts := self._split(key, over=key)):
                out.extend(parts)
            else:
                out.append(token)
            i += 1
        return " ".join(out)

    def _join_cut_letters(self, tokens: list[str]) -> list[str]:
        """Tokens with a lone letter cut off the word before it joined back, when the joined
        word is known ("מתאים ל י" -> "מתאים לי", "בוק ר" -> "בוקר"): a letter in a final
        form, a letter that is no prefix, or any letter ending the utterance."""
        out: list[str] = []
        for index, token in enumerate(tokens):
            if (
                out
                and len(token) == 1
                and _HEBREW_WORD_RE.fullmatch(token)
                and (
                    token in _FINAL_FORMS
                    or token not in _PREFIX_LETTERS
                    or index == len(tokens) - 1
                )
                and _HEBREW_WORD_RE.fullmatch(out[-1])
                and self.known(word_key(out[-1] + token))
            ):
                out[-1] += token
            else:
                out.append(token)
        return out

    def _correct(self, key: str) -> tuple[str] | None:
        """The known word with doubled letters single, else the most frequent known word one
        confused letter or one dropped last letter away."""
        single = _DOUBLED_RE.sub(r"\1", key)
        if self.known(single):
            return (single,)
        if len(key) < MIN_CORRECTED_CHARS:
            return None
        candidates = [key + letter for letter in _LETTERS]
        for index, letter in enumerate(key):
            candidates.extend(
                key[:index] + other + key[index + 1 :] for other in _CONFUSED.get(letter, "")
            )
        best = max(candidates, key=lambda word: self.word_counts.get(word, 0), default=key)
        return (best,) if self.known(best) else None

    def _split(self, key: str, *, over: str | None = None) -> tuple[str, str] | None:
        """The likeliest two known words ``key`` is glued from; with ``over``, only when both
        are SPLIT_OVER_KNOWN_RATIO times as frequent as ``over`` itself ("כמהזה" is in the
        training rows because recognisers write it; "כמה" and "זה" are far more frequent)."""
        best: tuple[int, str, str] | None = None
        for cut in range(MIN_PART_CHARS, len(key) - MIN_PART_CHARS + 1):
            head, tail = key[:cut], key[cut:]
            if (
                head in self.word_counts
                and tail in self.word_counts
                and (self.known(head) or self.known(tail))
            ):
                weight = min(self.word_counts[head], self.word_counts[tail])
                if best is None or weight > best[0]:
                    best = (weight, head, tail)
        if best is None or (
            over is not None and best[0] < SPLIT_OVER_KNOWN_RATIO * self.word_counts.get(over, 0)
        ):
            return None
        return best[1], best[2]

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
            word_counts={
                str(word): int(count)
                for word, count in zip(data["words"], data["word_counts"], strict=True)
            },
        )


@cache
def shipped_model() -> IntentModel:
    """The model shipped with the package, read once per process."""
    return load_model()


def repair_words(text: str) -> str:
    """``text`` with glued and cut words mended by the shipped model's training words."""
    return shipped_model().repair(text)


def model_intent(key: str, moment: str) -> ModelGuess:
    """The shipped model's guess for sound-alike ``key`` said at ``moment``."""
    return shipped_model().guess(key, moment)
