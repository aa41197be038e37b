"""Answering machines: leave the campaign's voicemail message and hang up.

Outbound calls ask Twilio for answering-machine detection that waits for the end of the
greeting (``DetectMessageEnd``), so the voice webhook arrives with ``AnsweredBy`` and,
for a machine, right after its beep: the message is heard from its first word.
"""

from __future__ import annotations

from typing import Final

from voicebot.api.twilio_audio import prepare_speech
from voicebot.brain.script import AgentScript
from voicebot.brain.speech_text import to_spoken
from voicebot.call.services import CallServices
from voicebot.telephony.twiml import speak_then_hangup

VOICEMAIL_ANSWERS: Final = frozenset(
    {"machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)
"""``AnsweredBy`` values after which the agent leaves a message instead of talking."""


def is_machine(answered_by: str | None) -> bool:
    return answered_by in VOICEMAIL_ANSWERS


async def voicemail_twiml(services: CallServices, script: AgentScript | None) -> str:
    """The script's voicemail text in its spoken form (our audio, else Twilio's ``<Say>``),
    then ``<Hangup/>``."""
    text = to_spoken((script or AgentScript.default()).render_voicemail())
    return speak_then_hangup(await prepare_speech(services, text))
