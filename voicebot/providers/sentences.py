"""Cuts streamed LLM text into speakable sentences, as early as it safely can.

Hebrew-aware: a full stop ends a sentence only when followed by whitespace, and not in
decimals (``2.5``), ellipses (``...``, ``…``), abbreviations (``וכו.``, ``מס.``, single-letter
initials) or dotted names (``example.co.il``). Times (``14:30``) and gershayim (``ד"ר``) never
split. The first sentence is cut at its first clause (a comma, or before a connective
such as אבל / כי / ולכן, once a few words are in) so the first TTS request starts sooner;
later sentences are cut at a comma only when long.
"""

from __future__ import annotations

import re

# A first sentence longer than this is cut at the next comma followed by a space.
DEFAULT_FIRST_SOFT_SPLIT_CHARS = 30
# The first clause ends at a comma or before a connective once this many words are in.
DEFAULT_FIRST_CLAUSE_MIN_WORDS = 3
# Later sentences are cut at a comma only past this length.
DEFAULT_SOFT_SPLIT_CHARS = 90
# With no usable boundary at all, text is cut at the last space before this length.
DEFAULT_MAX_SENTENCE_CHARS = 220

# Words that end in a full stop without ending the sentence (compared without the dot).
# fmt: off
ABBREVIATIONS = frozenset({
    "וכו", "וכד", "וגו", "מס", "רח", "עמ", "טל", "פרופ", "גב", "ד״ר", "דר", "מר", "לפנה״צ",
    "אחה״צ", "כנ״ל", "בע״מ", "ת.ד", "mr", "mrs", "ms", "dr", "prof", "vs", "etc", "e.g", "i.e",
})
# fmt: on
_SENTENCE_END = "?!"
_CLOSERS = "\"'”’״׳)]»"
_SOFT_SPLIT = re.compile(r"[,;]\s")
# A connective that opens a new clause; the cut falls before it.
_CONNECTIVE = re.compile(r"\s(?=(?:אבל|כי|ולכן|ואז|אלא|כדי|למרות)\s)")


class SentenceSplitter:
    """Accumulates text deltas and returns each complete sentence as soon as it ends."""

    def __init__(
        self,
        *,
        first_soft_split_chars: int = DEFAULT_FIRST_SOFT_SPLIT_CHARS,
        soft_split_chars: int = DEFAULT_SOFT_SPLIT_CHARS,
        max_sentence_chars: int = DEFAULT_MAX_SENTENCE_CHARS,
        first_clause_min_words: int = DEFAULT_FIRST_CLAUSE_MIN_WORDS,
    ) -> None:
        """``first_clause_min_words`` 0 turns the first-clause cut off."""
        self._first_clause_min_words = first_clause_min_words
        self._first_soft_split_chars = first_soft_split_chars
        self._soft_split_chars = soft_split_chars
        self._max_sentence_chars = max_sentence_chars
        self._buffer = ""
        self._scan_from = 0
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        """Add a delta; return the sentences it completed, in order."""
        self._buffer += delta
        sentences: list[str] = []
        while (cut := self._find_cut(final=False)) is not None:
            self._take(cut, sentences)
        return sentences

    def flush(self) -> str | None:
        """End of stream: return whatever text is left, or None if there is none."""
        sentences: list[str] = []
        while (cut := self._find_cut(final=True)) is not None:
            self._take(cut, sentences)
        self._take(len(self._buffer), sentences)
        self.reset()
        return " ".join(sentences) or None

    def reset(self) -> None:
        """Forget buffered text (barge-in, new turn)."""
        self._buffer = ""
        self._scan_from = 0
        self._emitted = 0

    def _take(self, cut: int, out: list[str]) -> None:
        sentence = self._buffer[:cut].strip()
        self._buffer = self._buffer[cut:].lstrip()
        self._scan_from = 0
        if sentence:
            out.append(sentence)
            self._emitted += 1

    def _find_cut(self, *, final: bool) -> int | None:
        """Index just past the first sentence end, or None if none is certain yet."""
        text = self._buffer
        n = len(text)
        i = self._scan_from
        while i < n:
            char = text[i]
            if char == "\n":
                return i + 1
            if char in _SENTENCE_END or char == ".":
                end = _end_of_marks(text, i)
                if end == n and not final:
                    self._scan_from = i
                    return None
                if self._is_boundary(text, i, end):
                    return end
                i = end
                continue
            i += 1
        self._scan_from = n
        return self._soft_cut(text)

    def _is_boundary(self, text: str, start: int, end: int) -> bool:
        marks = text[start:end].rstrip(_CLOSERS)
        if end < len(text) and not text[end].isspace():
            return False
        if any(c in _SENTENCE_END for c in marks):
            return True
        if marks.count(".") + marks.count("…") * 3 >= 2 or marks.startswith("…"):
            return end < len(text) and text[end] == "\n"
        word = _word_before(text, start)
        return not _is_abbreviation(word)

    def _soft_cut(self, text: str) -> int | None:
        if self._emitted == 0 and self._first_clause_min_words:
            cut = self._first_clause(text)
            if cut is not None:
                return cut
        threshold = self._first_soft_split_chars if self._emitted == 0 else self._soft_split_chars
        if len(text) > threshold:
            match = _SOFT_SPLIT.search(text, threshold)
            if match is not None:
                return match.start() + 1
        if len(text) > self._max_sentence_chars:
            space = text.rfind(" ", 0, self._max_sentence_chars)
            return space if space > 0 else self._max_sentence_chars
        return None

    def _first_clause(self, text: str) -> int | None:
        """The end of the first clause: a comma, or the space before a connective, with at
        least ``first_clause_min_words`` words before it."""
        need = self._first_clause_min_words
        cuts = [m.start() + 1 for m in _SOFT_SPLIT.finditer(text)]
        cuts += [m.start() for m in _CONNECTIVE.finditer(text)]
        for cut in sorted(cuts):
            if len(text[:cut].split()) >= need:
                return cut
        return None


def _end_of_marks(text: str, start: int) -> int:
    """Index past a run of sentence marks (``?!.…``) and the closing quotes after it."""
    i = start
    while i < len(text) and text[i] in "?!.…":
        i += 1
    while i < len(text) and text[i] in _CLOSERS:
        i += 1
    return i


def _word_before(text: str, index: int) -> str:
    start = index
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "(\"'“":
        start -= 1
    return text[start:index]


def _is_abbreviation(word: str) -> bool:
    normalized = word.replace('"', "״").replace("'", "׳").lower()
    if normalized in ABBREVIATIONS:
        return True
    # Single-letter initials ("ש. כהן") and dotted acronyms ("ת.ד") are not sentence ends.
    return (len(normalized) == 1 and normalized.isalpha()) or "." in normalized


def split_sentences(text: str) -> list[str]:
    """Every sentence of a finished text, cut exactly as a stream of it would be."""
    splitter = SentenceSplitter()
    return [*splitter.feed(text), *(s for s in [splitter.flush()] if s)]
