"""Canonical form of recognised speech, the one input of intent and time parsing.

Owns: niqqud and punctuation removal, final-letter folding, spelling variants and
English loan words, filler words, and Hebrew number words turned into digits.
Every pattern matched against canonical text must itself be passed through
:func:`fold_finals` (the pattern modules do this at import).
"""

from __future__ import annotations

import re
from functools import lru_cache

from voicebot.brain.hebrew_numbers import TEEN_SUFFIXES, WORD_VALUES

_NIQQUD_RE = re.compile("[\u0591-\u05bd\u05bf-\u05c7]")
_FINALS = str.maketrans("ךםןףץ", "כמנפצ")
# ASR writes gershayim abbreviations with ASCII or Hebrew quote marks.
_ABBREVIATIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"אחה[\"״'׳]?צ", " אחרי הצהריים "),
        (r"אח[\"״'׳]כ", " אחר כך "),
        (r"ש[\"״'׳]ח", " שקלים "),
        (r"₪", " שקלים "),
        (r"בע[\"״'׳]מ", " "),
        (r"ז[\"״'׳]א", " זאת אומרת "),
        # Any other gershayim abbreviation is one word ("חו\"ל", "מע\"מ", "עו\"ד").
        (r"(?<=[\u05d0-\u05ea])[\"״](?=[\u05d0-\u05ea])", ""),
    )
)
# Keep ":" "/" "." between digits (clock times and dates); everything else is a separator.
_PUNCT_RE = re.compile(r"(?<!\d)[:/.](?!\d)|(?<=\d)[:/.](?!\d)|(?<!\d)[:/.](?=\d)|[^\w\s:/.]|_")
_DIGIT_PREFIX_RE = re.compile(r"(?<![\w])([ובלמהש]{1,2})(?=\d)")
_SPACES_RE = re.compile(r"\s+")
_ELONGATED_RE = re.compile(r"([\u05d0-\u05ea])\1{2,}")  # "הלוווו", "ביייי": stretched on the phone

# Spelling variants and loan words, keyed by their folded spelling.
_VARIANTS_RAW: dict[str, str] = {
    "אוקי": "אוקיי", "אוקיי": "אוקיי", "אוקייי": "אוקיי", "אוקיה": "אוקיי", "ok": "אוקיי",
    "okay": "אוקיי", "אוקה": "אוקיי", "קיי": "אוקיי",
    "סבבא": "סבבה", "סבאבה": "סבבה", "sababa": "סבבה",
    "bye": "ביי", "ביביי": "ביי", "בייביי": "ביי", "ביוש": "ביי",
    "יס": "כן", "yes": "כן", "yeah": "כן", "יאפ": "כן", "yep": "כן", "יא": "כן", "כנ": "כן",
    "no": "לא", "נופ": "לא", "nope": "לא", "לאא": "לא", "לאאא": "לא",
    "פרייס": "מחיר", "price": "מחיר", "פרייסינג": "מחיר",
    "תנקס": "תודה", "טנקס": "תודה", "thanks": "תודה", "thank": "תודה",
    "סורי": "סליחה", "sorry": "סליחה", "וואט": "מה", "what": "מה", "ווט": "מה",
    "ביזי": "עסוק", "busy": "עסוק",
    "email": "מייל", "mail": "מייל", "אימייל": "מייל", "אימיל": "מייל", "מיל": "מייל",
    "whatsapp": "וואטסאפ", "ווטסאפ": "וואטסאפ", "וואצאפ": "וואטסאפ", "ווצאפ": "וואטסאפ",
    "וואטסאפ": "וואטסאפ", "וואטספ": "וואטסאפ",
    "please": "בבקשה", "פליז": "בבקשה",
    "שאלום": "שלום", "שלומות": "שלום", "hello": "הלו", "הלוו": "הלו", "אלו": "הלו", "הללו": "הלו",
    "מעונין": "מעוניין", "מעונינת": "מעוניינת", "מעונינים": "מעוניינים",
    "מענין": "מעניין", "עכשו": "עכשיו", "שתים": "שתיים", "אינטרסנט": "מעניין",
    "נציגה": "נציג", "בנאדם": "בן אדם", "תתקשרי": "תתקשר", "תתקשרו": "תתקשר",
    "תחזרי": "תחזור", "תחזרו": "תחזור",
    "תורידי": "תוריד", "תורידו": "תוריד", "תשלחי": "תשלח", "תשלחו": "תשלח",
    "תעבירי": "תעביר", "תעבירו": "תעביר", "תגידי": "תגיד", "תגידו": "תגיד",
    "תספרי": "תספר", "תספרו": "תספר", "תקבעי": "תקבע", "תקבעו": "תקבע",
    "תיתקשר": "תתקשר", "תיתקשרו": "תתקשר", "רלבנטי": "רלוונטי", "רלוונתי": "רלוונטי",
    "interested": "מעוניין", "not": "לא", "explain": "תסביר", "pardon": "מה",
    "much": "כמה", "human": "נציג", "agent": "נציג",
    "נוט": "לא", "אינטרסטד": "מעוניין", "אינטרסטיד": "מעוניין",
    "אללו": "הלו", "היוש": "היי", "ציאו": "ביי", "צאו": "ביי", "ciao": "ביי",
}  # fmt: skip
# Not "אמ": folded it is "אם" (if), a word ("אם זה קצר אז בסדר").
FILLERS_RAW = frozenset({"אממ", "אמממ", "אהה", "אההה", "אה", "אהמ", "הממ", "המממ", "כאילו",
                         "נו", "יעני", "אמממממ", "אההם", "אממם", "מממ",
                         # LABELLING.md: discourse words never decide the label.
                         "תשמע", "תשמעי", "תקשיב", "תקשיבי"})  # fmt: skip

# Recognisers glue short words to the next one ("לאשמעתי", "מיזה", "כמזה"): a token that
# is a head below followed by a known tail is split back into two words.
_MERGED_HEADS_RAW: dict[str, str] = {
    "לא": "לא", "מי": "מי", "כמה": "כמה", "כמ": "כמה", "אפשר": "אפשר", "תוריד": "תוריד",
    "תורידו": "תוריד", "מה": "מה", "כנ": "כן", "זה": "זה",
}  # fmt: skip
_MERGED_TAILS_RAW = frozenset({
    "שמעתי", "שומע", "שומעת", "הבנתי", "קלטתי", "מעוניין", "מעונין", "מעוניינת", "מעניין",
    "רלוונטי", "צריך", "צריכה", "רוצה", "מתאים", "יודע", "יודעת", "נכון", "עכשיו", "תודה",
    "זה", "זאת", "מדבר", "מדברת", "עולה", "לקבוע", "אותי", "אמרת", "הלו", "שלום", "בטח",
})  # fmt: skip
# One-letter prefixes recognisers glue to a loan word ("הפרייס", "בווטסאפ"): the word behind
# them is still looked up among the variants.
_GLUED_PREFIXES = frozenset("הובלמש")
_GLUED_MIN_CHARS = 3  # shorter remainders ("יס" in "ביס") are other words
# Letters recognisers confuse because Israeli speech does not tell them apart: matching
# compares texts with each pair folded to one letter ("תעית" ~ "טעית", "עולא" ~ "עולה" is not
# folded: a final ה/א would merge "לא" with "לה"; nor is ח/כ: "מחיר" and "מכיר", "שלח" and
# "שלכם" would merge).
_SOUNDALIKE = str.maketrans("טקע", "תכא")
_DOUBLED_RE = re.compile(r"([\u05d0-\u05ea])\1")
_NUMBER_PREFIXES = ("וב", "ול", "ומ", "וה", "בה", "לה", "מה", "ו", "ב", "ל", "מ", "ה")


def fold_finals(text: str) -> str:
    """Replace final letters (ך ם ן ף ץ) by their regular forms, so typos in them never matter."""
    return text.translate(_FINALS)


VARIANTS: dict[str, str] = {fold_finals(k): fold_finals(v) for k, v in _VARIANTS_RAW.items()}
FILLERS: frozenset[str] = frozenset(fold_finals(w) for w in FILLERS_RAW)
_WORD_VALUES: dict[str, int] = {fold_finals(k): v for k, v in WORD_VALUES.items()}
_TEENS: frozenset[str] = frozenset(fold_finals(w) for w in TEEN_SUFFIXES)
_MERGED_HEADS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        ((fold_finals(k), fold_finals(v)) for k, v in _MERGED_HEADS_RAW.items()),
        key=lambda kv: -len(kv[0]),
    )
)
_MERGED_TAILS: frozenset[str] = frozenset(fold_finals(w) for w in _MERGED_TAILS_RAW)


def _unmerge(token: str) -> tuple[str, ...]:
    """Split a token the recogniser glued together ("לאשמעתי" → "לא", "שמעתי")."""
    for head, word in _MERGED_HEADS:
        if token.startswith(head) and token[len(head) :] in _MERGED_TAILS:
            return word, token[len(head) :]
    return (token,)


def soundalike(text: str) -> str:
    """The key texts and patterns are matched on: ט→ת, ק→כ, ע→א, doubled letters single.

    ``text`` is canonical text or a pattern source (folded finals): letters map to
    letters, so a regular expression keeps its meaning. "בוקר תוב" and "בוקר טוב" share
    one key, as do "שלוםם"/"שלום", "מעונין"/"מעוניין" and "להתרעות"/"להתראות".
    """
    return _DOUBLED_RE.sub(r"\1", text.translate(_SOUNDALIKE))


def _variant(token: str) -> str:
    """The unified spelling of a token, also behind one glued prefix letter ("הפרייס" → "המחיר")."""
    found = VARIANTS.get(token)
    if found is not None:
        return found
    rest = token[1:]
    if token[:1] in _GLUED_PREFIXES and len(rest) >= _GLUED_MIN_CHARS and rest in VARIANTS:
        return token[0] + VARIANTS[rest]
    return token


def strip_niqqud(text: str) -> str:
    """Remove Hebrew vowel points and cantillation marks, keep the letters."""
    return _NIQQUD_RE.sub("", text)


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Canonical text: no niqqud/punctuation/fillers, folded finals, unified variants.

    Number words are left as words; see :func:`words_to_digits`. Digits keep their
    ``:`` ``/`` ``.`` separators, and a prefix letter glued to digits ("ב-9", "ב9")
    becomes a separate token ("ב 9").
    """
    text = strip_niqqud(text).replace("\u05be", " ").lower()
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    text = _ELONGATED_RE.sub(r"\1\1", _PUNCT_RE.sub(" ", text))
    text = _DIGIT_PREFIX_RE.sub(r"\1 ", fold_finals(text))
    tokens = []
    for raw in text.split():
        for part in _unmerge(raw) if raw not in VARIANTS else (raw,):
            token = _variant(part)
            if token not in FILLERS:
                tokens.append(token)
    return " ".join(tokens)


def _number_value(token: str) -> tuple[str, int] | None:
    """Split a token into (prefix, value) when it is a number word, else None."""
    value = _WORD_VALUES.get(token)
    if value is not None:
        return "", value
    for prefix in _NUMBER_PREFIXES:
        if token.startswith(prefix) and len(token) > len(prefix):
            value = _WORD_VALUES.get(token[len(prefix) :])
            if value is not None:
                return prefix, value
    return None


@lru_cache(maxsize=4096)
def words_to_digits(canonical: str) -> str:
    """Turn Hebrew number words in canonical text into digit tokens.

    "בשתיים ועשרים וחמש" → "ב 2 ו 25"; teens ("אחת עשרה") and tens + "ו" + unit
    ("עשרים ושלוש") become one number; a prefix letter stays a token of its own.
    """
    tokens = canonical.split()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        parsed = _number_value(tokens[i])
        if parsed is None:
            out.append(tokens[i])
            i += 1
            continue
        prefix, value = parsed
        i += 1
        if 1 <= value <= 9 and i < len(tokens) and tokens[i] in _TEENS:
            value += 10
            i += 1
        elif value == 100 and i < len(tokens):
            nxt = _number_value(tokens[i])
            if nxt is not None and nxt[0] in ("", "ו") and nxt[1] < 100:
                value += nxt[1]
                i += 1
        elif value >= 20 and value % 10 == 0 and i < len(tokens):
            nxt = _number_value(tokens[i])
            if nxt is not None and nxt[0] == "ו" and 1 <= nxt[1] <= 9:
                value += nxt[1]
                i += 1
        if prefix:
            out.append(prefix)
        out.append(str(value))
    return " ".join(out)
