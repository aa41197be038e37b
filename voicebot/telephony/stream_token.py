"""Short-lived signed tokens that tie a Media Stream to the call that asked for it.

The voice webhook issues a token and hands it to Twilio as a ``<Parameter>``;
it comes back in ``start.customParameters`` over the websocket, where it is
verified before any audio is processed. The token is an HMAC-SHA256 over the
call id, the call SID and the expiry time, keyed by ``settings.stream_secret``:
it proves integrity and freshness, and hides nothing (the ids are not secret).

Format: ``v1.<call_id>.<call_sid>.<expires_at_s>.<base64url mac>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

from voicebot.errors import SignatureError

FORMAT_VERSION = "v1"
_SEPARATOR = "."
_FIELD_COUNT = 5


@dataclass(frozen=True, slots=True)
class StreamClaims:
    """What a valid stream token vouches for."""

    call_id: int
    call_sid: str
    expires_at_s: int


def issue_stream_token(
    secret: bytes, *, call_id: int, call_sid: str, ttl_s: int, now_s: float | None = None
) -> str:
    """Sign a token for ``call_id``/``call_sid`` that expires ``ttl_s`` seconds from now."""
    if not secret:
        raise ValueError("stream token secret is empty")
    if _SEPARATOR in call_sid or not call_sid:
        raise ValueError(f"invalid call SID {call_sid!r}")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    now = time.time() if now_s is None else now_s
    expires_at_s = int(now) + ttl_s
    body = _SEPARATOR.join((FORMAT_VERSION, str(int(call_id)), call_sid, str(expires_at_s)))
    return body + _SEPARATOR + _mac(secret, body)


def verify_stream_token(
    secret: bytes | Sequence[bytes], token: str | None, *, now_s: float | None = None
) -> StreamClaims:
    """Return the claims of a genuine, unexpired token; raise :class:`SignatureError` otherwise.

    ``secret`` may be several keys (the current one first, then the one before a rotation):
    a token signed with any of them is genuine.
    """
    if not token:
        raise SignatureError("missing stream token")
    parts = token.split(_SEPARATOR)
    if len(parts) != _FIELD_COUNT or parts[0] != FORMAT_VERSION:
        raise SignatureError("malformed stream token")
    body, mac = token.rsplit(_SEPARATOR, 1)
    keys = (secret,) if isinstance(secret, bytes) else tuple(secret)
    presented = mac.encode("ascii", "replace")
    if not any(hmac.compare_digest(presented, _mac(key, body).encode("ascii")) for key in keys):
        raise SignatureError("stream token signature is invalid")
    _, call_id_text, call_sid, expires_text = parts[:4]
    try:
        claims = StreamClaims(
            call_id=int(call_id_text), call_sid=call_sid, expires_at_s=int(expires_text)
        )
    except ValueError as exc:
        raise SignatureError("malformed stream token") from exc
    now = time.time() if now_s is None else now_s
    if now >= claims.expires_at_s:
        raise SignatureError("stream token expired", details={"expired_at_s": claims.expires_at_s})
    return claims


def _mac(secret: bytes, body: str) -> str:
    digest = hmac.new(secret, body.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
