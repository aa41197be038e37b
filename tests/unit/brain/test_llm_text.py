"""Model text is cleaned and rewritten for speech; text that is not Hebrew is refused."""

from __future__ import annotations

import pytest

from voicebot.brain.llm_text import is_hebrew, speakable


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("**מעולה!** נתראה ב-14:30.", "מעולה! נתראה בשתיים וחצי."),
        ("- יש מקום מחר 🙂", "יש מקום מחר"),
        ("אפשר בוואטסאפ או ב-WhatsApp Business.", "אפשר בוואטסאפ או ב-WhatsApp Business."),
    ],
)
def test_speakable_cleans_and_speaks(text: str, spoken: str) -> None:
    """Markdown, bullets and emoji go; digits become words; a Latin brand name may stay."""
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    "text",
    [
        "As an AI language model, I cannot.",
        "{'tool': 'x'}",
        "12:30",
        "",
        "🙂🙂",
        "OK א",
        "Sure, שלום to you",
    ],
)
def test_not_hebrew_is_refused(text: str) -> None:
    """English, JSON, bare numbers, nothing and emoji are not something to say on the call."""
    assert not is_hebrew(text)
    assert speakable(text) is None
