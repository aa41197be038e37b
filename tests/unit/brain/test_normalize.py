"""Canonical text of recognised speech: merged words split back, stretched letters folded."""

from __future__ import annotations

import pytest

from voicebot.brain.normalize import fold_finals, normalize, soundalike


@pytest.mark.parametrize(
    ("heard", "canonical"),
    [
        ("לאשמעתי", "לא שמעתי"),
        ("מיזה", "מי זה"),
        ("כמזה עולה", "כמה זה עולה"),
        ("אפשרלקבוע פגישה", "אפשר לקבוע פגישה"),
        ("תורידאותי מהרשימה", "תוריד אותי מהרשימה"),
        ("כןהלו", "כן הלו"),
    ],
)
def test_merged_words_are_split_back(heard: str, canonical: str) -> None:
    """A short word the recogniser glued to a known next word becomes two tokens again."""
    assert normalize(heard) == fold_finals(canonical)


@pytest.mark.parametrize("word", ["לאן", "מיטל", "כמובן", "אפשרות", "מהר"])
def test_ordinary_words_are_not_split(word: str) -> None:
    """Words that merely start like a merge ("לאן", "מיטל") stay whole."""
    assert normalize(word) == fold_finals(word)


def test_stretched_letters_fold_but_numbers_stay() -> None:
    """ "הלוווו" and "ביייי" fold to their words; digits ("1000") are never shortened."""
    assert normalize("הלוווו ביייי לאאאא 1000") == fold_finals("הלו ביי לא 1000")


@pytest.mark.parametrize(
    ("heard", "meant"),
    [
        ("בוקר תוב", "בוקר טוב"),
        ("תעית במספר", "טעית במספר"),
        ("עסוקק", "עסוק"),
        ("שלוםם", "שלום"),
        ("יאללה להתרעות", "יאללה להתראות"),
        ("לא מעונין", "לא מעוניין"),
        ("אני מדבר עם רובות", "אני מדבר עם רובוט"),
    ],
)
def test_letters_recognisers_confuse_share_one_key(heard: str, meant: str) -> None:
    """ט/ת, ק/כ, ע/א and doubled letters give one matching key for what was heard and meant."""
    assert soundalike(normalize(heard)) == soundalike(normalize(meant))


@pytest.mark.parametrize(("one", "other"), [("לא", "לה"), ("כן", "כל"), ("מה", "מי")])
def test_distinct_words_keep_distinct_keys(one: str, other: str) -> None:
    """Only confusable letters fold: "לא" never becomes "לה", "כן" never "כל"."""
    assert soundalike(one) != soundalike(other)


@pytest.mark.parametrize(
    ("heard", "canonical"),
    [("מה הפרייס", "מה המחיר"), ("בווטסאפ", "בוואטסאפ"), ("ביס", "ביס"), ("המיל", "המייל")],
)
def test_loan_word_behind_a_glued_prefix_is_unified(heard: str, canonical: str) -> None:
    """A variant behind one glued prefix letter is unified; short remainders ("ביס") are left."""
    assert normalize(heard) == fold_finals(canonical)
