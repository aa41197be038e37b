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


def test_a_runaway_transcript_of_a_short_utterance_is_a_person() -> None:
    """A recogniser looping on a word gives thousands of words for a second of audio:
    the monologue rule needs the audio to have lasted too, so the caller is answered."""
    words = " ".join(["כן אפשר לדבר"] * 2000)
    assert machine_kind(words, speech_ms=1500) is None
    assert machine_kind(" ".join(["מילה"] * 25), speech_ms=9000) == "voicemail"
