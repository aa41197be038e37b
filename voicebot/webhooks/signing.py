"""Webhook signatures, the scheme Stripe uses: HMAC-SHA256 over ``<timestamp>.<body>``.

Every request carries ``Voicebot-Signature: t=<unix seconds>,v1=<hex digest>`` and
``Voicebot-Event-Id`` (the same on every retry of one event: receivers de-duplicate on
it). A receiver checks the digest with its secret and refuses timestamps older than a
tolerance (a replayed capture); :func:`verify_signature` does both and is what the
README shows receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

SIGNATURE_HEADER: Final = "Voicebot-Signature"
EVENT_ID_HEADER: Final = "Voicebot-Event-Id"
EVENT_TYPE_HEADER: Final = "Voicebot-Event-Type"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE_S: Final = 300
"""A signature older (or further in the future) than this is refused."""


class SignatureMismatchError(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def signature_header(secret: str, body: bytes, *, timestamp: int | None = None) -> str:
    """The ``Voicebot-Signature`` value for ``body`` signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},{SCHEME}={_digest(secret, t, body)}"


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a received ``Voicebot-Signature`` against the raw ``body``; returns its
    timestamp. Raises :class:`SignatureMismatchError` when it does not hold."""
    if not header:
        raise SignatureMismatchError("no signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureMismatchError("malformed signature header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureMismatchError("signature timestamp outside the tolerance")
    expected = _digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureMismatchError("signature does not match")
    return timestamp


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
