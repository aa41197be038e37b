"""Retry backoff by attempt: retry_base_min doubling up to retry_max_min."""

from __future__ import annotations

from datetime import timedelta

from voicebot.db.outcomes import retry_delay


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    """30, 60, 120, 240 minutes, then 240 for ever (and no overflow at attempt 100)."""
    delays = [retry_delay(n, base_min=30, max_min=240) for n in (1, 2, 3, 4, 5, 100)]
    assert delays == [timedelta(minutes=m) for m in (30, 60, 120, 240, 240, 240)]
