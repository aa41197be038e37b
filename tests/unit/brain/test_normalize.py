"""Canonical text of recognised speech: merged words split back, stretched letters folded."""

from __future__ import annotations

import pytest

from voicebot.brain.normalize import fold_finals, normalize


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
