"""Voicebot-Signature: Stripe's scheme, HMAC-SHA256 over ``<t>.<body>``."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from voicebot.webhooks.signing import (
    SignatureMismatchError,
    signature_header,
    verify_signature,
)

SECRET = "whsec_0123456789abcdef"
BODY = '{"id":"evt_1","type":"meeting.booked","data":{"name":"דנה"}}'.encode()


def test_header_is_t_and_v1_hmac_over_timestamp_dot_body() -> None:
    """The header is ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_verify_accepts_its_own_signature() -> None:
    """A fresh signature of the same body verifies and yields its timestamp."""
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)
    assert verify_signature(SECRET, BODY, header, now=1_700_000_010) == 1_700_000_000


@pytest.mark.parametrize(
    ("body", "secret", "now"),
    [
        (BODY + b" ", SECRET, 1_700_000_010),  # body changed
        (BODY, "another-secret-of-16", 1_700_000_010),  # wrong key
        (BODY, SECRET, 1_700_000_400),  # stale: past the 300 s tolerance
    ],
)
def test_verify_refuses_tampered_foreign_or_stale(body: bytes, secret: str, now: int) -> None:
    """A changed body, another key or an old timestamp is refused."""
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)
    with pytest.raises(SignatureMismatchError):
        verify_signature(secret, body, header, now=now)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=123", "t=x,v1=ab"])
def test_verify_refuses_missing_or_malformed_headers(header: str | None) -> None:
    """No header, or one without both parts, is refused."""
    with pytest.raises(SignatureMismatchError):
        verify_signature(SECRET, BODY, header, now=123)
