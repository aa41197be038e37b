"""Stream tokens: issued per call, verified on `start`, refused when forged or stale."""

from __future__ import annotations

import pytest

from voicebot.errors import SignatureError
from voicebot.telephony.stream_token import StreamClaims, issue_stream_token, verify_stream_token

SECRET = b"s" * 32
NOW_S = 1_700_000_000.0
CALL_SID = "CA0123456789abcdef0123456789abcdef"


def _token(**overrides: object) -> str:
    args: dict[str, object] = {"call_id": 42, "call_sid": CALL_SID, "ttl_s": 120, "now_s": NOW_S}
    args.update(overrides)
    return issue_stream_token(SECRET, **args)  # type: ignore[arg-type]


def test_valid_token_yields_its_claims() -> None:
    """A fresh token verifies to the call id, SID and expiry it was issued for."""
    claims = verify_stream_token(SECRET, _token(), now_s=NOW_S + 60)
    assert claims == StreamClaims(call_id=42, call_sid=CALL_SID, expires_at_s=int(NOW_S) + 120)


def test_expired_token_is_refused() -> None:
    """A token presented at or after its expiry raises SignatureError."""
    with pytest.raises(SignatureError, match="expired"):
        verify_stream_token(SECRET, _token(), now_s=NOW_S + 120)


@pytest.mark.parametrize("field", [1, 2, 3])
def test_forged_claims_are_refused(field: int) -> None:
    """Changing the call id, SID or expiry invalidates the MAC."""
    parts = _token().split(".")
    parts[field] = {1: "43", 2: "CA" + "f" * 32, 3: str(int(NOW_S) + 99_999)}[field]
    with pytest.raises(SignatureError, match="signature"):
        verify_stream_token(SECRET, ".".join(parts), now_s=NOW_S)


def test_other_secret_is_refused() -> None:
    """A token signed with another key does not verify."""
    with pytest.raises(SignatureError):
        verify_stream_token(b"other" * 8, _token(), now_s=NOW_S)


@pytest.mark.parametrize(
    "token", [None, "", "garbage", "v1.1.CA.2", "v2.1.CA.2.mac", "v1.x.CA.1.é"]
)
def test_missing_or_malformed_tokens_are_refused(token: str | None) -> None:
    """Absent, truncated, wrongly versioned or non-ASCII tokens raise SignatureError."""
    with pytest.raises(SignatureError):
        verify_stream_token(SECRET, token, now_s=NOW_S)
