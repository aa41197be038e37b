"""Log masking: phone numbers hidden, dates and ids left alone, secrets dropped."""

from __future__ import annotations

from voicebot.logging import mask_phone, mask_processor, mask_text


def test_mask_phone_keeps_prefix_and_last_four() -> None:
    """+972541234567 is logged as +97254***4567."""
    assert mask_phone("+972541234567") == "+97254***4567"


def test_mask_text_hides_local_and_e164_numbers_but_not_dates() -> None:
    """Numbers in free text are masked; ISO dates and plain ids are not."""
    text = mask_text("from 054-4567890 to +972525551234 on 2026-11-24T10:00, call 42")
    assert "4567890" not in text.replace("***7890", "")
    assert "+97252***1234" in text
    assert "2026-11-24T10:00" in text
    assert "call 42" in text


def test_processor_drops_secrets_by_key() -> None:
    """Values under secret-like keys never reach the renderer."""
    event = mask_processor(None, "info", {"event": "x", "api_key": "sk-123", "auth_token": "t"})
    assert event["api_key"] == "***"
    assert event["auth_token"] == "***"
