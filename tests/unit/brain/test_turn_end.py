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


@pytest.mark.parametrize(
    "text", ["כן, אפשר לדבר עכשיו", "כן מעניין אותי", "לא, אנחנו מסודרים", "בטח, תשלח לי"]
)
def test_replies_led_by_an_answer_word(text: str) -> None:
    """A short reply opened by כן / לא / בטח is answered (the medium silence)."""
    assert classify_turn_end(text) is TurnEnd.ANSWERED


@pytest.mark.parametrize(
    "text",
    [
        "",
        "יש לנו בערך עשרים עובדים",
        "תשלח לי את הפרטים בווטסאפ",
        "מחר אני לא יכול",
        "כן, אני מעוניין אבל רק אחרי החגים",
        "כן, אפשר לדבר עכשיו אבל רק רגע קצר",
    ],
)
def test_open(text: str) -> None:
    """Everything else keeps the default silence: no words, plain statements, a time the
    caller turns down, a reply led by an answer word that goes on past a connective or
    past four words."""
    assert classify_turn_end(text) is TurnEnd.OPEN
