"""Model text made fit to speak, and the check that it is Hebrew at all.

Owns :func:`speakable`: strips what a chat model writes for a screen (markdown marks,
emoji, list bullets), rewrites digits for the ear (:func:`~voicebot.brain.speech_text.to_spoken`)
and refuses text that is not mostly Hebrew, which on a Hebrew phone call is a failure of
the model, not something to read out.
"""

from __future__ import annotations

import re

from voicebot.brain.speech_text import to_spoken

MIN_HEBREW_WORD_SHARE = 0.5  # of the words that hold letters
MIN_HEBREW_LETTERS = 2

_SCREEN_MARKS = re.compile(r"[*_#`~>|\[\]{}<]|^\s*(?:[-•]|\d+[.)])\s+", re.MULTILINE)
_NOT_SPEECH = re.compile(r"[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")
_SPACES = re.compile(r"\s+")


def is_hebrew(text: str) -> bool:
    """True when at least half the words of ``text`` are Hebrew (a Latin brand name may stay)."""
    words = [w for w in text.split() if any(c.isalpha() for c in w)]
    hebrew_words = [w for w in words if any(_is_hebrew_letter(c) for c in w)]
    letters = sum(1 for c in text if _is_hebrew_letter(c))
    return letters >= MIN_HEBREW_LETTERS and len(hebrew_words) >= MIN_HEBREW_WORD_SHARE * len(words)


def _is_hebrew_letter(char: str) -> bool:
    return "\u05d0" <= char <= "\u05ea"


def speakable(sentence: str) -> str | None:
    """The sentence cleaned and written for speech, or None when it is not Hebrew."""
    cleaned = _SPACES.sub(" ", _NOT_SPEECH.sub("", _SCREEN_MARKS.sub(" ", sentence))).strip()
    if not is_hebrew(cleaned):
        return None
    return to_spoken(cleaned)
