"""Outcome words map to stored outcomes, and lead statuses only move to stronger ones."""

from __future__ import annotations

import pytest

from voicebot.db.models import CallOutcome, LeadStatus
from voicebot.db.outcomes import STATUS_OUTCOMES, call_outcome, next_lead_status


@pytest.mark.parametrize(
    ("word", "outcome"),
    [
        ("booked", CallOutcome.MEETING_BOOKED),
        ("callback", CallOutcome.CALLBACK_SCHEDULED),
        ("do_not_call", CallOutcome.DO_NOT_CALL),
        ("meeting_booked", CallOutcome.MEETING_BOOKED),
        ("hung_up", CallOutcome.COMPLETED),
        (None, CallOutcome.COMPLETED),
    ],
)
def test_brain_words_map_to_outcomes(word: str | None, outcome: CallOutcome) -> None:
    """The brain's outcome words and stored values both resolve; the rest is COMPLETED."""
    assert call_outcome(word) == outcome


def test_final_statuses_map_to_no_answer_or_failed() -> None:
    """busy/no-answer are no_answer; failed/canceled are failed; completed is not mapped."""
    assert STATUS_OUTCOMES["busy"] == STATUS_OUTCOMES["no-answer"] == CallOutcome.NO_ANSWER
    assert STATUS_OUTCOMES["failed"] == STATUS_OUTCOMES["canceled"] == CallOutcome.FAILED
    assert "completed" not in STATUS_OUTCOMES


@pytest.mark.parametrize(
    ("current", "outcome", "expected"),
    [
        ("new", CallOutcome.NO_ANSWER, LeadStatus.UNREACHABLE),
        ("new", CallOutcome.COMPLETED, LeadStatus.CONTACTED),
        ("meeting_booked", CallOutcome.NO_ANSWER, LeadStatus.MEETING_BOOKED),
        ("do_not_call", CallOutcome.MEETING_BOOKED, LeadStatus.DO_NOT_CALL),
        ("meeting_booked", CallOutcome.DO_NOT_CALL, LeadStatus.DO_NOT_CALL),
        ("callback", CallOutcome.NOT_INTERESTED, LeadStatus.NOT_INTERESTED),
        ("not_interested", CallOutcome.CALLBACK_SCHEDULED, LeadStatus.CALLBACK),
        ("callback", CallOutcome.VOICEMAIL, LeadStatus.CALLBACK),
        ("contacted", CallOutcome.FAILED, LeadStatus.CONTACTED),
        ("unreachable", CallOutcome.MEETING_BOOKED, LeadStatus.MEETING_BOOKED),
        ("legacy-status", CallOutcome.VOICEMAIL, LeadStatus.UNREACHABLE),
    ],
)
def test_lead_status_never_weakens(current: str, outcome: CallOutcome, expected: str) -> None:
    """A weaker outcome never overwrites a stronger status; equal ranks take the latest."""
    assert next_lead_status(current, outcome) == expected


def test_every_outcome_has_a_lead_status() -> None:
    """No outcome leaves the lead's status undecided."""
    for outcome in CallOutcome:
        assert isinstance(next_lead_status("new", outcome), LeadStatus)
