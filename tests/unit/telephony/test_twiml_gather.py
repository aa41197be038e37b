"""TwiML of <Gather> calls: a turn plays our audio inside <Gather>; endings hang up or dial;
without audio the text is spoken by Twilio's Hebrew voice."""

from __future__ import annotations

from voicebot.telephony import twiml
from voicebot.telephony.twiml import Speech

DECL = '<?xml version="1.0" encoding="UTF-8"?>'


def test_gather_turn_plays_each_url_inside_gather() -> None:
    """The turn posts speech or one key to the action, also on silence, in Hebrew."""
    speech = Speech("שלום. מה נשמע?", ("https://b/twilio/audio/a.wav", "https://b/x.wav"))
    assert twiml.gather_turn("https://b/twilio/gather?call_id=3&x=1", speech) == (
        DECL + '<Response><Gather action="https://b/twilio/gather?call_id=3&amp;x=1" '
        'actionOnEmptyResult="true" input="dtmf speech" language="he-IL" method="POST" '
        'numDigits="1" speechTimeout="auto" timeout="5">'
        "<Play>https://b/twilio/audio/a.wav</Play><Play>https://b/x.wav</Play>"
        "</Gather></Response>"
    )


def test_without_audio_the_text_is_said_in_hebrew() -> None:
    """No URLs: <Say language="he-IL"> with the Google Hebrew voice, then <Hangup/>."""
    assert twiml.speak_then_hangup(Speech("להתראות")) == (
        DECL + '<Response><Say language="he-IL" voice="Google.he-IL-Standard-A">להתראות</Say>'
        "<Hangup /></Response>"
    )


def test_transfer_plays_then_dials() -> None:
    """The hand-over sentence plays before <Dial>."""
    assert twiml.speak_then_dial(Speech("מעבירה", ("https://b/t.wav",)), "+97235550000") == (
        DECL + "<Response><Play>https://b/t.wav</Play><Dial>+97235550000</Dial></Response>"
    )
