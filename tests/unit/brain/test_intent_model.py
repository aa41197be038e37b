"""The shipped intent n-gram model: fitted on today's training rows, sklearn-exact n-grams."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.intent_model import char_wb_ngrams, model_intent, shipped_model
from voicebot.brain.intents import detect_intent
from voicebot.brain.normalize import normalize, soundalike
from voicebot.testing.intent_eval import training_sha256

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2026, 3, 10, 9, 30, tzinfo=TZ)


def test_model_is_fitted_on_the_current_training_rows() -> None:
    """The model records the training files' hash: changed rows need a refit (train script)."""
    digest = training_sha256()
    assert shipped_model().dev_sha256 == digest, "run scripts/train_intent_model.py"


@pytest.mark.parametrize("text", ["כן הלו", "מה המכיר", "א", "תעבירו אותי לנציג אנושי בבקשה"])
def test_ngrams_are_those_scikit_learn_fits_on(text: str) -> None:
    """Our char_wb n-grams equal scikit-learn's, so the fitted weights mean the same thing."""
    text_module = pytest.importorskip("sklearn.feature_extraction.text")
    analyse = text_module.TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)).build_analyzer()
    assert char_wb_ngrams(text, (2, 5)) == analyse(text)


def test_model_reads_misspelt_speech_in_context() -> None:
    """A greeting heard as "הלוו" after the agent's greeting is a greeting, with a probability."""
    guess = model_intent(soundalike(normalize("הלוו כן")), "greeting")
    assert guess.intent == "greeting"
    assert 0.5 <= guess.probability <= 1.0


def test_model_answers_where_no_pattern_matches() -> None:
    """ "מה המכיר" (מחיר misheard) matches no pattern; the model's second opinion is price."""
    result = detect_intent("מה המכיר", now=NOW, tz=TZ, expecting="yes_no", moment="closing")
    assert result.intent == "price_question"


@pytest.mark.parametrize("answer", ["אנחנו חמישה", "אני", "אממ בעיקר אני עונה בעצמי"])
def test_answers_to_open_questions_are_left_to_the_brain(answer: str) -> None:
    """An answer to an open question that no pattern knows stays unclear (the brain records it)."""
    result = detect_intent(answer, now=NOW, tz=TZ, expecting="none", moment="pitch")
    assert result.intent == "unclear"


def test_model_never_proposes_a_time_it_cannot_parse() -> None:
    """Without a parsed time a weak utterance stays unclear, never a time proposal."""
    result = detect_intent("אממ", now=NOW, tz=TZ, expecting="slot", moment="slots")
    assert result.intent != "propose_time"
    assert result.time is None


@pytest.mark.parametrize(
    ("heard", "mended"),
    [
        ("כמהזה עולה", "כמה זה עולה"),  # two words glued
        ("לא מעוני ין", "לא מעוניינ"),  # one word cut in two
        ("אני לא מעונין תודה", "אני לא מעונין תודה"),  # a known spelling is left alone
        ("איפה אתה גר", "איפה אתה גר"),  # a word seen in the rows is never split
        ("לה תודה", "לא תודה"),  # an opening "לה" is "לא"
    ],
)
def test_repair_mends_glued_and_cut_words(heard: str, mended: str) -> None:
    """Spacing errors are undone with the training words; words already seen stay as they are."""
    assert shipped_model().repair(heard) == mended


@pytest.mark.parametrize(
    ("heard", "moment", "expecting", "intent"),
    [
        ("אפשרלקבוע פגישה", "pitch", "none", "book_meeting"),
        ("אני לאמעוניין בזה", "pitch", "none", "not_interested"),
        ("מה המחי בערך", "pitch", "none", "price_question"),  # last letter dropped
        ("רגע מה נסמע", "greeting", "yes_no", "greeting"),  # ס for ש
    ],
)
def test_misheard_words_are_understood(
    heard: str, moment: str, expecting: str, intent: str
) -> None:
    """Glued, cut and clipped words reach the patterns as the caller said them."""
    result = detect_intent(heard, now=NOW, tz=TZ, expecting=expecting, moment=moment)  # type: ignore[arg-type]
    assert result.intent == intent
