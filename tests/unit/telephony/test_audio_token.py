"""Phrase audio names: they round-trip the Hebrew text and refuse anything not issued."""

from __future__ import annotations

import re

import pytest

from voicebot.telephony.audio_token import issue_audio_token, verify_audio_token

SECRET = b"s" * 32
TEXT = "היי דנה, כאן נועה מליד פלוס."


def test_round_trip_is_stable_and_url_safe() -> None:
    """The same text always gets the same name, made only of URL-safe characters."""
    token = issue_audio_token(SECRET, TEXT)
    assert token == issue_audio_token(SECRET, TEXT)
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", token)
    assert verify_audio_token(SECRET, token) == TEXT


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.replace(".", ".x", 1),
        lambda t: "A" + t,
        lambda t: t.split(".")[0],
        lambda t: "",
        lambda t: "!!!.???",
    ],
)
def test_tampered_names_are_refused(mangle: object) -> None:
    """A changed text, signature or shape verifies to None."""
    token = issue_audio_token(SECRET, TEXT)
    assert verify_audio_token(SECRET, mangle(token)) is None  # type: ignore[operator]


def test_another_secret_is_refused() -> None:
    """A name issued by another deployment does not verify."""
    assert verify_audio_token(b"o" * 32, issue_audio_token(SECRET, TEXT)) is None


def test_overlong_text_is_rejected() -> None:
    """Text past the URL budget is refused at issue time."""
    with pytest.raises(ValueError, match="too long"):
        issue_audio_token(SECRET, "א" * 1000)


def test_a_validly_signed_name_of_too_much_text_is_refused() -> None:
    """Even with the key (a leaked or default SECRET_KEY), a name carrying 40 kB of text
    is refused: audio keys cover at most MAX_TEXT_BYTES of text."""
    import base64
    import hashlib
    import hmac

    from voicebot.telephony.audio_token import MAX_TEXT_BYTES

    body = base64.urlsafe_b64encode(("א" * 20_000).encode()).rstrip(b"=").decode()
    mac = hmac.new(SECRET, b"voicebot-audio-v1\x00" + body.encode(), hashlib.sha256).digest()
    forged = body + "." + base64.urlsafe_b64encode(mac[:16]).rstrip(b"=").decode()
    assert verify_audio_token(SECRET, forged) is None
    longest = issue_audio_token(SECRET, "a" * MAX_TEXT_BYTES)
    assert verify_audio_token(SECRET, longest) == "a" * MAX_TEXT_BYTES
