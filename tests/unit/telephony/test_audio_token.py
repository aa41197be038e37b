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
