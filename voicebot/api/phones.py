"""Phone numbers: parse anything a person types into E.164 with ``phonenumbers``."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "IL"


def is_phone_address(raw: str) -> bool:
    """False for Twilio's other caller addresses (``sip:…``, ``client:…``): no scheme, no '@'."""
    return ":" not in raw and "@" not in raw


def normalize_phone(raw: str, *, region: str = DEFAULT_REGION) -> str:
    """Return E.164 (``054-4567890`` → ``+972544567890``); raise ValueError if invalid.

    Letters are refused before ``phonenumbers`` sees them: it reads vanity numbers
    (``1-800-FLOWERS``) and would turn a typo such as ``054x4567870`` into some number."""
    if any(ch.isalpha() for ch in raw):
        raise ValueError("a phone number has no letters: digits, spaces, '+', '-', '(', ')' only")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
