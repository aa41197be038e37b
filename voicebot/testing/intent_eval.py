"""The labelled intent evaluation: caller utterances, the moment each is said at, the intent.

Owns loading the sets shipped in ``voicebot/testing/data`` and scoring
:func:`~voicebot.brain.intents.detect_intent` on them exactly as
:class:`~voicebot.brain.rules.RuleBrain` calls it at the stage each moment stands for.

Development sets (:data:`DEV_SETS`; their misses may be read and the classifier tuned
on the kinds of error they show):

- ``dev`` (``intents_dev.tsv``): the first development half; the n-gram model is also
  fitted on it.
- ``heldout`` (``intents_heldout.tsv``), reported as ``dev_v1``: the first held-out half,
  read by earlier tuners, so no longer held out.
- ``heldout_v2`` (``intents_heldout_v2.tsv``), reported as ``dev_v2``: written blind and
  measured once (91.0%); spent by that measurement and development data since. Neither
  v1 nor v2 is ever fitted on: the model learns from new rows written for each kind of
  miss (``intents_train.tsv``), so both still say something about unseen phrasings.
- ``dev_v3`` (``intents_dev_v3.tsv``): written from LABELLING.md by a writer who never saw
  the classifier, with a sister batch that became training rows (``intents_train_a.tsv``);
  its first contact (85.3%) and the figures on the way are in its header. Never fitted on.

Held-out sets (:data:`HELDOUT_SETS`): ``heldout_v3`` and ``heldout_v4``
(``intents_heldout_v*.tsv``), each written blind by a session that never saw the classifier;
measured, never read or tuned on.

Used by ``scripts/intent_eval.py``, ``scripts/intent_cv.py`` and
``tests/unit/brain/test_intent_eval.py``.
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

Half = Literal["dev", "heldout", "heldout_v2", "dev_v3", "heldout_v3", "heldout_v4"]
DEV_SETS: tuple[Half, ...] = ("dev", "heldout", "heldout_v2", "dev_v3")
HELDOUT_SETS: tuple[Half, ...] = ("heldout_v3", "heldout_v4")
# The name each set is reported under (file names predate v2 becoming development data).
REPORTED_AS: dict[str, str] = {
    "dev": "dev",
    "heldout": "dev_v1",
    "heldout_v2": "dev_v2",
    "dev_v3": "dev_v3",
    "heldout_v3": "heldout_v3",
    "heldout_v4": "heldout_v4",
}
DATA_DIR = Path(__file__).parent / "data"
TRAIN_EXTRA = "intents_train.tsv"  # training-only rows, in the same format
# Every training-only file: the rows written for the kinds of development miss, then the
# batches written blind from LABELLING.md (their headers give their first-contact scores).
TRAIN_FILES: tuple[str, ...] = (
    TRAIN_EXTRA,
    "intents_train_a.tsv",
    "intents_train_c.tsv",
    "intents_train_d.tsv",
    "intents_train_e.tsv",
    "intents_train_g.tsv",
    "intents_train_h.tsv",
    "intents_train_i.tsv",
    "intents_train_j.tsv",
    "intents_train_k.tsv",
    "intents_train_l.tsv",
    "intents_train_m.tsv",
    "intents_train_n.tsv",
)
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


def path_of(half: Half) -> Path:
    """The file one set is read from."""
    return DATA_DIR / f"intents_{half}.tsv"


def load(half: Half) -> tuple[Labelled, ...]:
    """The rows of one set (``moment<TAB>intent<TAB>text``, ``#`` lines are comments).

    Raises ``ValueError`` on a malformed row or an unknown moment, ``OSError`` on a
    missing file.
    """
    return _read(path_of(half))


def load_training() -> tuple[Labelled, ...]:
    """The rows the n-gram model is fitted on: the first development half and the extra
    training utterances. Never ``heldout`` (v1), ``heldout_v2``, ``dev_v3`` or ``heldout_v3``."""
    return load("dev") + load_extra()


def load_extra() -> tuple[Labelled, ...]:
    """The training-only rows of every file in :data:`TRAIN_FILES`."""
    return tuple(row for name in TRAIN_FILES for row in _read(DATA_DIR / name))


def training_sha256() -> str:
    """SHA-256 over the training files, recorded in the fitted model."""
    digest = hashlib.sha256()
    for name in ("intents_dev.tsv", *TRAIN_FILES):
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
