"""Is the caller's turn over? A judgement from the Hebrew words heard so far.

The endpointer decides the end of a turn from silence alone unless it is told more;
this module tells it more. A complete short answer (כן, לא, תודה, בטח…), a question or
a time expression is a finished turn, so a short silence ends it (a time the caller turns
down, "מחר אני לא יכול", is not: the alternative usually follows); a short reply led by an
answer word (כן, אפשר לדבר עכשיו) is finished unless a clause follows at once
("כן, אני מעוניין … אבל רק אחרי החגים"), so a medium silence ends it; hesitation (אממ, רגע,
כאילו, אז, a trailing ו…, an utterance ending in a preposition or in ש) means the
caller is still forming the sentence, so the turn waits longer. Anything else keeps
the default. Pure text in, a class out: no I/O, no clock.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from voicebot.brain.timeparse import parse_hebrew_time

SHORT_ANSWER_MAX_WORDS: Final = 3
"""An utterance of only answer words, at most this long, is a complete short answer."""
LED_ANSWER_MAX_WORDS: Final = 4
"""An utterance opened by an answer word (כן, לא, בטח…), at most this long and with no
connective in it, is an answered turn ("כן מעניין אותי")."""

# fmt: off
SHORT_ANSWER_WORDS: Final = frozenset({
    "כן", "לא", "תודה", "רבה", "בטח", "בסדר", "אוקיי", "אוקי", "ברור", "נכון", "סבבה",
    "מעולה", "יופי", "מצוין", "בדיוק", "אין", "בעיה", "ממש", "ביי", "להתראות", "שלום",
    "אפשר", "מתאים", "לגמרי", "בהחלט", "ודאי", "טוב", "הלו",
})
ANSWER_LEAD_WORDS: Final = frozenset({
    "כן", "לא", "בטח", "ברור", "בסדר", "אוקיי", "אוקי", "סבבה", "נכון", "בהחלט", "ודאי",
})
QUESTION_WORDS: Final = frozenset({
    "מה", "מי", "איך", "למה", "מתי", "איפה", "כמה", "האם", "איזה", "איזו", "מאיפה", "לאן",
    "מדוע",
})
HESITATION_WORDS: Final = frozenset({
    "אממ", "אמממ", "אמ", "אם", "אה", "אהה", "אההה", "הממ", "המ", "ממ", "מממ", "רגע", "כאילו",
    "אז", "ו", "ש", "אבל", "כי", "או", "גם", "שנייה", "יעני", "בעצם", "נו", "אולי", "וגם",
    "כש", "שה", "וש", "כמו", "לגבי", "בקשר",
})
PREPOSITIONS: Final = frozenset({
    "ב", "ל", "מ", "על", "אל", "את", "עם", "של", "עד", "בין", "לפני", "אחרי", "בשביל",
    "אצל", "מול", "ליד", "בלי", "מאז", "לקראת", "בגלל", "כדי", "לפי", "בתוך", "מתוך", "תחת",
})
NEGATION_WORDS: Final = frozenset({"לא", "אין", "אי"})
# fmt: on
_TRAILING_ELLIPSIS = re.compile(r"(\.\.\.|…|-|–)\s*$")
_NON_WORD = re.compile(r"[^\w\s?]")
_NIQQUD = re.compile(r"[\u0591-\u05c7]")
# Only whether the text names a time matters, not which: a fixed reference instant.
_TZ = ZoneInfo("Asia/Jerusalem")
_REFERENCE_NOW = datetime(2026, 1, 4, 9, 0, tzinfo=_TZ)


class TurnEnd(enum.Enum):
    """What the words so far say about the end of the turn."""

    COMPLETE = "complete"
    """A finished short answer, question or time: a short silence ends the turn."""
    ANSWERED = "answered"
    """A short reply led by an answer word: finished unless a clause follows at once; a
    medium silence."""
    OPEN = "open"
    """Nothing either way: the default silence."""
    HESITANT = "hesitant"
    """The caller is mid-thought: wait longer."""


def classify_turn_end(text: str) -> TurnEnd:
    """Classify the transcript of the caller's utterance so far."""
    raw = _NIQQUD.sub("", text).strip()
    if not raw:
        return TurnEnd.OPEN
    if _TRAILING_ELLIPSIS.search(raw):
        return TurnEnd.HESITANT
    words = _NON_WORD.sub(" ", raw.replace("?", " ? ")).split()
    question = "?" in words
    words = [w for w in words if w != "?"]
    if not words:
        return TurnEnd.COMPLETE if question else TurnEnd.OPEN
    last = words[-1]
    trailing = last in HESITATION_WORDS or last in PREPOSITIONS
    if trailing or all(w in HESITATION_WORDS for w in words):
        return TurnEnd.HESITANT
    if question or words[0] in QUESTION_WORDS:
        return TurnEnd.COMPLETE
    if len(words) <= SHORT_ANSWER_MAX_WORDS and all(w in SHORT_ANSWER_WORDS for w in words):
        return TurnEnd.COMPLETE
    if (
        words[0] in ANSWER_LEAD_WORDS
        and len(words) <= LED_ANSWER_MAX_WORDS
        and not any(w in HESITATION_WORDS for w in words[1:])
    ):
        return TurnEnd.ANSWERED
    negated = any(w in NEGATION_WORDS for w in words)
    if not negated and parse_hebrew_time(raw, now=_REFERENCE_NOW, tz=_TZ) is not None:
        return TurnEnd.COMPLETE
    return TurnEnd.OPEN
