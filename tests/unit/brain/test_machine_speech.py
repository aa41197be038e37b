"""The first-utterance check: Hebrew voicemail greetings and network announcements are
machines, the ways people answer a call are not."""

from __future__ import annotations

import pytest

from voicebot.brain.machine_speech import machine_kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("השאירו הודעה אחרי הצליל", "voicemail"),
        ("הגעתם לתא הקולי של משה כהן", "voicemail"),
        ("נא השאר הודעה", "voicemail"),
        ("המנוי אינו זמין כרגע", "announcement"),
        ("המספר שחייגת אינו מחובר", "unreachable"),
        ("המספר, שחייגת - אינו מחובר!", "unreachable"),
    ],
)
def test_recordings_are_machines(text: str, kind: str) -> None:
    """Greetings and announcements are recognised, punctuation aside."""
    assert machine_kind(text) == kind


@pytest.mark.parametrize("text", ["הלו", "כן מי זה", "שלום, מדברת דנה", "כן?", ""])
def test_people_are_not(text: str) -> None:
    """A person's answer is not a machine."""
    assert machine_kind(text) is None


def test_a_long_monologue_is_a_recording() -> None:
    """Twenty-five words without a pause for the agent: a machine."""
    assert machine_kind(" ".join(["מילה"] * 25)) == "voicemail"
