"""E-mail addresses and web addresses in a reply, said the way Israelis read them out.

"info@leadplus.co.il" → "info שטרודל leadplus נקודה co נקודה il"; "https://www.x.co.il/yoga"
→ "x נקודה co נקודה il סלאש yoga". Latin words stay for the TTS to read; the symbols
between them become the Hebrew words said for them, digits are said one by one, and
"https://" and "www." are dropped (nobody says them). The result has no "@", no dots
between words and no digits, so a second pass changes nothing.
"""

from __future__ import annotations

import re
from typing import Final

_DIGIT_NAMES: Final = ("אפס", "אחת", "שתיים", "שלוש", "ארבע", "חמש", "שש", "שבע", "שמונה", "תשע")
_SYMBOL_WORDS: Final = {
    "@": "שטרודל", ".": "נקודה", "/": "סלאש", "-": "מקף", "_": "קו תחתון", "+": "פלוס",
}  # fmt: skip
_TLDS = r"co\.il|org\.il|gov\.il|ac\.il|net\.il|com|org|net|il|io|co|app|ai|info|biz"
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9.+_])[A-Za-z0-9][A-Za-z0-9._+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
)
_URL_RE = re.compile(
    rf"(?<![A-Za-z0-9.@/_])(?:https?://)?(?:www\.)?[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*"
    rf"\.(?:{_TLDS})(?![A-Za-z0-9-])(?:/[A-Za-z0-9\-._~/]*[A-Za-z0-9\-_~/])?"
)
_PIECE_RE = re.compile(r"[A-Za-z]+|\d|[@./\-_+]")
NEEDS_ADDRESS_RE: Final = re.compile(r"@|://|www\.|\.(?:co\.il|com|org)(?![A-Za-z])")


def _say(address: str) -> str:
    address = re.sub(r"^(?:https?://)?(?:www\.)?", "", address).rstrip("/")
    words = []
    for piece in _PIECE_RE.findall(address):
        if piece.isdigit():
            words.append(_DIGIT_NAMES[int(piece)])
        else:
            words.append(_SYMBOL_WORDS.get(piece, piece))
    return " ".join(words)


def spoken_addresses(text: str) -> str:
    """E-mail and web addresses in ``text`` as words; other text unchanged."""
    if not NEEDS_ADDRESS_RE.search(text):
        return text
    text = _EMAIL_RE.sub(lambda m: _say(m.group(0)), text)
    return _URL_RE.sub(lambda m: _say(m.group(0)), text)
