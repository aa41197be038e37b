"""Is the first thing "the caller" said a machine? Hebrew voicemail greetings and network
announcements, recognised from the transcript, because AMD misfires.

:func:`machine_kind` answers ``voicemail`` (a mailbox greeting: leave the message or hang
up, like AMD's machine verdict), ``unreachable`` (the number is disconnected or does not
exist: the lead is marked ``unreachable``), ``announcement`` (the subscriber is not
available, the network is busy: a machine, no message), or None for a person. Matching is
on the folded text (no niqqud or punctuation, final letters folded: :func:`fold`), so
STT spellings agree. A long monologue
with no pause for the agent is judged by the session (:data:`MONOLOGUE_MIN_WORDS`).
"""

from __future__ import annotations

import re
from typing import Final, Literal

from voicebot.brain.normalize import fold_finals, strip_niqqud

MachineKind = Literal["voicemail", "unreachable", "announcement"]

MONOLOGUE_MIN_WORDS: Final = 25
"""A first utterance this long, said without a pause for the agent, is a recording."""

MONOLOGUE_MIN_MS: Final = 6000
"""...and it must have taken this long to say (ms of audio): 25 words are 7-10 s of
Hebrew speech. A recogniser that loops on a word returns thousands of words for a
one-second "שלום": that is a person, not a recording."""

_UNREACHABLE: Final = (
    r"(המספר|המנוי) (ש|אליו |אשר )?(חייגת|חייגתם|חויג)\w* (אינו|איננו|לא) (מחובר|קיים|בשימוש)",
    r"(המספר|מספר הטלפון) (אינו|איננו|לא) (מחובר|קיים|בשימוש)",
    r"אין מנוי (במספר|כזה)",
    r"מספר (זה|הטלפון) (אינו|לא) תקין",
    r"המספר (שונה|הוחלף)",
)
_ANNOUNCEMENT: Final = (
    r"המנוי (ש|אליו |אשר )?(חייגת|חייגתם)?\s?(אינו|איננו|לא) (זמין|נגיש|עונה)",
    r"(הטלפון|המכשיר) (כבוי|מחוץ לאזור|אינו זמין)",
    r"(אינו|לא) (זמין|נגיש) כרגע",
    r"נא (לנסות|נסו|נסה) (שוב )?(מאוחר|במועד|בשעה) (יותר|אחר|מאוחרת)",
    r"(כל )?הקווים (תפוסים|עמוסים)",
)
_VOICEMAIL: Final = (
    r"תא (ה)?קולי",
    r"(ה)?תא (ה)?קולי של",
    r"(השאירו|השאר|השאירי|להשאיר|תשאירו|תשאיר|השארת) (לי |לנו )?הודעה",
    r"אחרי (ה)?צליל",
    r"לאחר (ה)?צליל",
    r"(אחרי|לאחר|בסיום) (ה)?(ביפ|צפצוף)",
    r"(אני|אנחנו) (לא|אינני|איננו) (יכול|יכולה|יכולים|זמין|זמינה|זמינים) לענות",
    r"(אין|לא) (אפשרות|יכולת) לענות (כרגע|עכשיו)",
    r"(הגעתם|הגעת|הגעתן) (ל|אל )",
    r"(נחזור|אחזור) (אליכם|אליך) (בהקדם|בהקדם האפשרי|בהמשך)",
    r"תיבת (ה)?(דואר|הודעות)",
)


_PUNCT: Final = re.compile(r"[^\w\s]")


def fold(text: str) -> str:
    """Transcript text as the patterns see it: no niqqud or punctuation, final letters
    folded, one space between words."""
    return " ".join(_PUNCT.sub(" ", fold_finals(strip_niqqud(text))).lower().split())


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{fold_finals(p)})" for p in patterns))


# The patterns' final letters are folded the way transcripts are.
_RULES: Final[tuple[tuple[MachineKind, re.Pattern[str]], ...]] = (
    ("unreachable", _compile(_UNREACHABLE)),
    ("announcement", _compile(_ANNOUNCEMENT)),
    ("voicemail", _compile(_VOICEMAIL)),
)


def machine_kind(text: str, speech_ms: float | None = None) -> MachineKind | None:
    """What kind of recording ``text`` (a transcript) is, or None for a person.

    ``speech_ms`` is the utterance's audio length in ms, when known: a monologue
    (:data:`MONOLOGUE_MIN_WORDS`) counts only if it also lasted :data:`MONOLOGUE_MIN_MS`.
    """
    folded = fold(text)
    if not folded:
        return None
    for kind, pattern in _RULES:
        if pattern.search(folded):
            return kind
    long_enough = speech_ms is None or speech_ms >= MONOLOGUE_MIN_MS
    if long_enough and len(folded.split()) >= MONOLOGUE_MIN_WORDS:
        return "voicemail"
    return None
