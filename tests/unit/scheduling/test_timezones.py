"""A lead's zone: override, else the number's single clock, else the default."""

from __future__ import annotations

from voicebot.scheduling import lead_timezone, number_zone

DEFAULT = "Asia/Jerusalem"


def test_number_with_one_zone_gets_it() -> None:
    """New York and Los Angeles numbers get their own zone."""
    assert lead_timezone("+12125550100", None, DEFAULT).key == "America/New_York"
    assert lead_timezone("+14155550100", None, DEFAULT).key == "America/Los_Angeles"


def test_israeli_numbers_get_jerusalem() -> None:
    """Israeli landline and mobile numbers resolve to Asia/Jerusalem from the number."""
    assert number_zone("+97221234567") == "Asia/Jerusalem"
    assert number_zone("+972501234567") == "Asia/Jerusalem"


def test_zones_with_one_clock_count_as_one() -> None:
    """A UK mobile maps to London and its crown dependencies: one clock, so that clock."""
    zone = number_zone("+447911123456")
    assert zone is not None and zone.startswith("Europe/")


def test_several_clocks_or_unknown_fall_back_to_default() -> None:
    """A US toll-free number (many zones), a Russian mobile or garbage gets the default."""
    for phone in ("+18005550100", "+79001234567", "not a number", "+15555550100"):
        assert lead_timezone(phone, None, DEFAULT).key == DEFAULT


def test_override_wins_and_bad_override_is_ignored() -> None:
    """A lead's own zone wins over the number; an unknown one falls back to the number."""
    assert lead_timezone("+12125550100", "Europe/Paris", DEFAULT).key == "Europe/Paris"
    assert lead_timezone("+12125550100", "Mars/Base", DEFAULT).key == "America/New_York"
