"""The labelled intent evaluation: caller utterances, the moment each is said at, the intent.

Owns loading the sets shipped in ``voicebot/testing/data`` (``dev``: patterns may be
tuned on its misses; ``heldout``: held out, but seen by the people who tuned the
classifier, kept and reported as ``heldout_v1`` for history; ``heldout_v2``: written
blind, by someone who never read the classifier or its data, measured only), the extra
training utterances (``intents_train.tsv``: written for the n-gram model to learn from,
never scored) and scoring
:func:`~voicebot.brain.intents.detect_intent` on them exactly as
:class:`~voicebot.brain.rules.RuleBrain` calls it at the stage each moment stands for.
Used by ``scripts/intent_eval.py`` and ``tests/unit/brain/test_intent_eval.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from voicebot.brain import state as st
from voicebot.brain.intents import detect_intent

Half = Literal["dev", "heldout", "heldout_v2"]
DATA_DIR = Path(__file__).parent / "data"
TRAIN_EXTRA = "intents_train.tsv"  # training-only rows, in the same format
TZ = ZoneInfo("Asia/Jerusalem")
# A Tuesday morning: "מחר" is a business day, so times parse as they would on most calls.
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=TZ)
# The RuleBrain stage each labelled moment stands for.
MOMENT_STAGE: dict[str, str] = {
    "greeting": st.PERMISSION,
    "pitch": st.QUALIFY,
    "slots": st.PROPOSE,
    "closing": st.OBJECTION,
}


@dataclass(frozen=True, slots=True)
class Labelled:
    """One utterance: the moment of the call it is said at, the intent meant, the text."""

    moment: str
    intent: str
    text: str


@dataclass(frozen=True, slots=True)
class Miss:
    """A labelled utterance the detector got wrong, and what it said instead."""

    case: Labelled
    got: str


@dataclass(frozen=True, slots=True)
class Score:
    """Accuracy of one half: ``correct`` of ``total``, and every miss."""

    half: str
    total: int
    correct: int
    misses: tuple[Miss, ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def load(half: Half) -> tuple[Labelled, ...]:
    """The rows of one set (``moment<TAB>intent<TAB>text``, ``#`` lines are comments).

    Raises ``ValueError`` on a malformed row or an unknown moment.
    """
    return _read(DATA_DIR / f"intents_{half}.tsv")


def load_training() -> tuple[Labelled, ...]:
    """The rows the n-gram model is fitted on: the development half and the extra training
    utterances. Never the held-out half."""
    return load("dev") + _read(DATA_DIR / TRAIN_EXTRA)


def training_sha256() -> str:
    """SHA-256 over the training files, recorded in the fitted model."""
    digest = hashlib.sha256()
    for name in ("intents_dev.tsv", TRAIN_EXTRA):
        digest.update((DATA_DIR / name).read_bytes())
    return digest.hexdigest()


def _read(path: Path) -> tuple[Labelled, ...]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or fields[0] not in MOMENT_STAGE:
            raise ValueError(f"{path.name}:{number}: malformed row {line!r}")
        rows.append(Labelled(*fields))
    return tuple(rows)


def classify(case: Labelled) -> str:
    """The intent detected for one row, at the stage its moment stands for."""
    stage = MOMENT_STAGE[case.moment]
    return detect_intent(
        case.text, now=NOW, tz=TZ, expecting=st.EXPECTING[stage], moment=st.MOMENT[stage]
    ).intent


def evaluate(half: Half) -> Score:
    """Score one set."""
    cases = load(half)
    misses = []
    for case in cases:
        got = classify(case)
        if got != case.intent:
            misses.append(Miss(case, got))
    return Score(half, len(cases), len(cases) - len(misses), tuple(misses))
