"""Intent detection over a table of real caller utterances."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.intents import INTENTS, detect_intent
from voicebot.brain.utterances import INTENT_CASES

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 30, tzinfo=TZ)  # a Tuesday morning
MIN_ACCURACY = 0.95
MIN_CASES = 150


def _classify(text: str, expecting: str) -> str:
    return detect_intent(text, now=NOW, tz=TZ, expecting=expecting).intent  # type: ignore[arg-type]


def test_intent_table_accuracy_and_confusions() -> None:
    """At least 95% of the utterance table is classified as labelled; confusions are printed."""
    assert len(INTENT_CASES) >= MIN_CASES
    confusions: Counter[tuple[str, str]] = Counter()
    misses: list[str] = []
    for text, expecting, expected in INTENT_CASES:
        got = _classify(text, expecting)
        if got != expected:
            confusions[(expected, got)] += 1
            misses.append(f"  {text!r} [{expecting}] expected {expected}, got {got}")
    accuracy = 1 - sum(confusions.values()) / len(INTENT_CASES)
    print(f"\nintent accuracy {accuracy:.1%} over {len(INTENT_CASES)} utterances")
    for (expected, got), count in confusions.most_common():
        print(f"  {expected:>16} -> {got:<16} x{count}")
    print("\n".join(misses))
    assert accuracy >= MIN_ACCURACY, "\n".join(misses)


def test_table_covers_every_intent() -> None:
    """Every intent the detector can return appears in the table."""
    labelled = {expected for _, _, expected in INTENT_CASES}
    assert set(INTENTS) <= labelled


@pytest.mark.parametrize(
    ("text", "expecting", "expected"),
    [
        ("כן", "yes_no", "yes"),
        ("כן", "slot", "accept_time"),
        ("לא", "yes_no", "no"),
        ("לא", "slot", "reject_time"),
        ("קבענו", "none", "yes"),
    ],
)
def test_context_changes_meaning(text: str, expecting: str, expected: str) -> None:
    """A bare yes/no means accept/reject only after slots were proposed."""
    assert _classify(text, expecting) == expected


def test_callback_request_carries_its_time() -> None:
    """ "תתקשר אליי מחר בחמש" is busy_call_later with tomorrow 17:00 attached."""
    result = detect_intent("תתקשר אליי מחר בחמש", now=NOW, tz=TZ)
    assert result.intent == "busy_call_later"
    assert result.time is not None
    assert result.time.start == datetime(2025, 3, 12, 17, 0, tzinfo=TZ)


def test_opt_out_beats_everything_else() -> None:
    """An opt-out inside a longer sentence still wins over busy/goodbye words."""
    result = detect_intent("אני עסוק ואל תתקשרו אליי יותר ביי", now=NOW, tz=TZ)
    assert result.intent == "remove_me"
