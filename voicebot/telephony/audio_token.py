"""Unguessable, self-describing names for the agent's phrase audio that Twilio fetches.

``<Play>`` makes Twilio GET an audio URL from whichever web instance the load balancer
picks, so the name itself carries the phrase (base64url of its UTF-8 text) and an HMAC
over it: any instance with the shared secret can check it and synthesize the audio; a
name we did not issue is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

NAME_SEPARATOR = "."
SIGNATURE_BYTES = 16
MAX_TEXT_BYTES = 1500
"""Longest phrase a token may carry (keeps URLs well under every proxy's limit)."""
_CONTEXT = b"voicebot-audio-v1\x00"


def issue_audio_token(secret: bytes, text: str) -> str:
    """The token naming ``text``'s audio; the same text always gets the same token."""
    data = text.encode()
    if len(data) > MAX_TEXT_BYTES:
        raise ValueError(f"phrase too long for an audio token: {len(data)} bytes")
    body = _b64(data)
    return f"{body}{NAME_SEPARATOR}{_b64(_sign(secret, body))}"


MAX_TOKEN_CHARS = (MAX_TEXT_BYTES + 2) // 3 * 4 + 1 + (SIGNATURE_BYTES + 2) // 3 * 4
"""Longest name :func:`issue_audio_token` makes; a longer one is refused unread."""


def verify_audio_token(secret: bytes | Sequence[bytes], token: str) -> str | None:
    """The phrase a token names, or None when it was not issued with ``secret`` (or any of
    several keys, during a key rotation) or names more than ``MAX_TEXT_BYTES`` of text:
    even a leaked key cannot make us synthesize an arbitrary amount of speech."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    body, sep, signature = token.partition(NAME_SEPARATOR)
    if not sep or not body:
        return None
    try:
        given = _unb64(signature)
        data = _unb64(body)
    except (binascii.Error, ValueError):
        return None
    keys = (secret,) if isinstance(secret, bytes) else tuple(secret)
    if not any(hmac.compare_digest(given, _sign(key, body)) for key in keys):
        return None
    if len(data) > MAX_TEXT_BYTES:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _sign(secret: bytes, body: str) -> bytes:
    return hmac.new(secret, _CONTEXT + body.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
