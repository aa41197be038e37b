"""<Gather> calls: after "רגע" and the agent's "בטח, אני מחכה." Twilio is told to wait
HOLD_SILENCE_FACTOR times longer for the caller than on any other turn."""

# ruff: noqa: F811 -- the fixtures imported from test_twilio_gather are requested by name

from __future__ import annotations

from tests.integration.api.test_twilio_gather import (  # fixtures, by name
    TwilioSide,
    _need_espeak,  # noqa: F401
    _seed_outbound_call,
    _sid,
    _xml,
    settings,  # noqa: F401
    twilio,  # noqa: F401
)
from voicebot.call.turns import HOLD_SILENCE_FACTOR
from voicebot.config import Settings
from voicebot.telephony.twiml import DEFAULT_GATHER_TIMEOUT_S


def _gather_timeout_s(twiml: str) -> int:
    gather = _xml(twiml).find("Gather")
    assert gather is not None, twiml
    return int(gather.attrib["timeout"])


async def test_a_hold_waits_longer_for_the_caller(twilio: TwilioSide, settings: Settings) -> None:
    """ "רגע" at the first question: the next <Gather> waits HOLD_SILENCE_FACTOR x the usual
    seconds; the turn after an answer is back to the usual wait."""
    call_sid = _sid()
    await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    assert _gather_timeout_s(first.text) == DEFAULT_GATHER_TIMEOUT_S
    held = await twilio.turn(first.text, call_sid, SpeechResult="רגע")
    assert _gather_timeout_s(held.text) == HOLD_SILENCE_FACTOR * DEFAULT_GATHER_TIMEOUT_S
    answered = await twilio.turn(held.text, call_sid, SpeechResult="כן, אפשר לדבר")
    assert _gather_timeout_s(answered.text) == DEFAULT_GATHER_TIMEOUT_S
