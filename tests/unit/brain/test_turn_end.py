"""Adaptive endpointing's judgement of Hebrew words: complete, open or hesitant."""

from __future__ import annotations

import pytest

from voicebot.brain.turn_end import TurnEnd, classify_turn_end


@pytest.mark.parametrize(
    "text",
    [
        "כן",
        "לא",
        "תודה",
        "בטח",
        "כן, בטח.",
        "לא תודה",
        "מי זה?",
        "כמה זה עולה",
        "מחר בעשר",
        "ביום שלישי בעשר בבוקר",
        "תודה רבה",
    ],
)
def test_complete_answers(text: str) -> None:
    """Short answers, questions and time expressions are complete turns."""
    assert classify_turn_end(text) is TurnEnd.COMPLETE


@pytest.mark.parametrize(
    "text",
    [
        "אממ",
        "רגע",
        "כאילו",
        "אז",
        "אני חושב ש",
        "כן, ו",
        "אני רוצה לדבר עם",
        "זה בגלל",
        "אפשר ביום...",
        "אממ אז",
    ],
)
def test_hesitation(text: str) -> None:
    """Fillers, a trailing connective or preposition and a trailing ellipsis hesitate."""
    assert classify_turn_end(text) is TurnEnd.HESITANT


@pytest.mark.parametrize("text", ["", "יש לנו בערך עשרים עובדים", "תשלח לי את הפרטים בווטסאפ"])
def test_open(text: str) -> None:
    """Everything else (and no words) keeps the default silence."""
    assert classify_turn_end(text) is TurnEnd.OPEN
