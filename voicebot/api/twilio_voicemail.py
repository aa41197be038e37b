"""Answering machines: leave the campaign's voicemail message and hang up.

Campaign calls ask Twilio for asynchronous answering-machine detection that waits for the
end of the greeting (``DetectMessageEnd`` + ``AsyncAmd``): the stream starts at once and
``/twilio/amd`` (:mod:`.twilio_amd`) hears the verdict, for a machine right after its
beep, so the message is heard from its first word. A voice webhook that itself carries
``AnsweredBy`` (synchronous detection) is answered with the message directly.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.api.twilio_audio import prepare_speech
from voicebot.brain.script import AgentScript
from voicebot.brain.speech_text import to_spoken
from voicebot.call.services import CallServices
from voicebot.db.models import Call, Campaign, Lead, VoicemailAction
from voicebot.db.types import utcnow
from voicebot.telephony.twiml import speak_then_hangup

FAX_ANSWER: Final = "fax"
"""``AnsweredBy`` of a fax line: hung up on, never a voice message, never redialed."""
MACHINE_ANSWERS: Final = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other"}
)
"""``AnsweredBy`` values that mean an answering machine (``machine_start`` only comes
with ``MachineDetection=Enable``)."""
VOICEMAIL_ANSWERS: Final = MACHINE_ANSWERS | {FAX_ANSWER}
"""``AnsweredBy`` values after which the agent does not talk."""


def is_machine(answered_by: str | None) -> bool:
    return answered_by in VOICEMAIL_ANSWERS


async def claim_voicemail(session: AsyncSession, call: Call) -> bool:
    """Whether to leave the voicemail message on this machine: the campaign says
    ``leave_message`` and no message was left for this lead before (at most one per lead);
    claims the lead's one message when True. Calls outside campaigns leave it."""
    campaign = await session.get(Campaign, call.campaign_id) if call.campaign_id else None
    if campaign is not None and campaign.voicemail_action != VoicemailAction.LEAVE_MESSAGE:
        return False
    if call.lead_id is None:
        return True
    claimed = await session.execute(
        update(Lead)
        .where(Lead.id == call.lead_id, Lead.voicemail_left_at.is_(None))
        .values(voicemail_left_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(claimed, "rowcount", 0))


async def voicemail_twiml(services: CallServices, script: AgentScript | None) -> str:
    """The script's voicemail text in its spoken form (our audio, else Twilio's ``<Say>``),
    then ``<Hangup/>``."""
    text = to_spoken((script or AgentScript.default()).render_voicemail())
    return speak_then_hangup(await prepare_speech(services, text))
