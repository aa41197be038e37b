"""SentenceSplitter on streamed Hebrew: early first sentence, no false splits."""

from __future__ import annotations

from voicebot.providers.sentences import SentenceSplitter


def stream(text: str, step: int = 3, **options: int) -> list[str]:
    """Feed ``text`` in small deltas, then flush; return every sentence."""
    splitter = SentenceSplitter(**options)
    out: list[str] = []
    for start in range(0, len(text), step):
        out += splitter.feed(text[start : start + step])
    rest = splitter.flush()
    return out + ([rest] if rest else [])


def test_first_sentence_is_emitted_before_the_stream_ends() -> None:
    """The first sentence comes out as soon as the next delta shows it ended."""
    splitter = SentenceSplitter()
    assert splitter.feed("שלום") == []
    assert splitter.feed("! מה") == ["שלום!"]
    assert splitter.feed(" שלומך?") == []
    assert splitter.flush() == "מה שלומך?"


def test_question_and_exclamation_marks_split() -> None:
    """?, ! and a full stop followed by a space end sentences; runs like ?! stay together."""
    assert stream("באמת?! כן. בטח!") == ["באמת?!", "כן.", "בטח!"]


def test_decimals_and_times_do_not_split() -> None:
    """2.5 and 14:30 are not sentence ends."""
    text = "המחיר 2.5 שקלים לדקה. נדבר ב-14:30 מחר."
    assert stream(text) == ["המחיר 2.5 שקלים לדקה.", "נדבר ב-14:30 מחר."]


def test_abbreviations_and_initials_do_not_split() -> None:
    """וכו., מס. and single-letter initials keep the sentence going."""
    text = "יש תפוחים, בננות וכו. בסניף מס. 3 אצל ש. כהן. תבוא?"
    assert stream(text, first_soft_split_chars=200) == [
        "יש תפוחים, בננות וכו. בסניף מס. 3 אצל ש. כהן.",
        "תבוא?",
    ]


def test_gershayim_and_quotes() -> None:
    """ד"ר is one word; a quote closing a sentence stays with it."""
    text = 'ד"ר לוי אמר "נתראה מחר." ואז הלך. זה 200 ש"ח.'
    assert stream(text) == ['ד"ר לוי אמר "נתראה מחר."', "ואז הלך.", 'זה 200 ש"ח.']


def test_ellipsis_does_not_split() -> None:
    """... and … are pauses inside a sentence."""
    assert stream("אז... אולי מחר… או היום.") == ["אז... אולי מחר… או היום."]


def test_web_addresses_do_not_split() -> None:
    """A dot inside a word (site.co.il) is not a boundary."""
    assert stream("היכנס לאתר alfa.co.il ותראה.") == ["היכנס לאתר alfa.co.il ותראה."]


def test_long_first_clause_splits_softly_at_a_comma() -> None:
    """Past the first-sentence threshold, a comma ends the first chunk so TTS starts early."""
    text = "בוקר טוב, אני מתקשרת מחברת אלפא מערכות, רציתי לשאול אם יש לך דקה"
    out = stream(text, first_soft_split_chars=30)
    assert out[0] == "בוקר טוב, אני מתקשרת מחברת אלפא מערכות,"
    assert out[1] == "רציתי לשאול אם יש לך דקה"


def test_newline_splits_and_flush_of_nothing_is_none() -> None:
    """A newline ends a sentence; flushing an empty splitter gives None."""
    splitter = SentenceSplitter()
    assert splitter.feed("שורה ראשונה\nשורה") == ["שורה ראשונה"]
    assert splitter.flush() == "שורה"
    assert splitter.flush() is None


def test_text_without_boundaries_is_cut_at_the_hard_cap() -> None:
    """A run-on reply is cut at a space before max_sentence_chars."""
    words = " ".join(["מילה"] * 30)
    out = stream(words, max_sentence_chars=50, first_soft_split_chars=500, soft_split_chars=500)
    assert all(len(s) <= 50 for s in out)
    assert " ".join(out) == words


def test_first_clause_ends_at_an_early_comma() -> None:
    """The first sentence is cut at a comma once three words are in, so TTS starts on it."""
    text = "אני מבין אותך לגמרי, ואשמח להסביר בקצרה מה אנחנו מציעים."
    assert stream(text) == ["אני מבין אותך לגמרי,", "ואשמח להסביר בקצרה מה אנחנו מציעים."]


def test_first_clause_ends_before_a_connective() -> None:
    """A connective (אבל, כי…) after a few words starts a new chunk; a short opening
    ("כן, ") is not cut on its own."""
    assert stream("כן, זה נכון שהמחיר גבוה אבל החיסכון גדול יותר.") == [
        "כן, זה נכון שהמחיר גבוה",
        "אבל החיסכון גדול יותר.",
    ]


def test_only_the_first_sentence_is_cut_at_clauses() -> None:
    """Later sentences keep their commas unless they are long."""
    assert stream("בשמחה. אשמח לספר לך עוד, מה הכי חשוב לך?") == [
        "בשמחה.",
        "אשמח לספר לך עוד, מה הכי חשוב לך?",
    ]
