"""TwiML documents: exact XML for stream, gather, dial, hangup, play and say."""

from __future__ import annotations

import pytest

from voicebot.telephony import twiml

DECL = '<?xml version="1.0" encoding="UTF-8"?>'


def test_connect_stream_with_escaped_parameters() -> None:
    """<Connect><Stream> carries one <Parameter> per item, XML-escaped."""
    assert twiml.connect_stream(
        "wss://bot.example.co.il/twilio/media", {"token": "a&b", "lead": "דנה"}
    ) == (
        DECL + '<Response><Connect><Stream url="wss://bot.example.co.il/twilio/media">'
        '<Parameter name="token" value="a&amp;b" /><Parameter name="lead" value="דנה" />'
        "</Stream></Connect></Response>"
    )


def test_connect_stream_refuses_a_query_string() -> None:
    """Twilio rejects stream URLs with a query string, so building one fails early."""
    with pytest.raises(ValueError, match="query string"):
        twiml.connect_stream("wss://x/twilio/media?token=1", {})


def test_gather_speech_says_hebrew_prompt() -> None:
    """A text prompt is spoken in he-IL inside a speech <Gather> posting to the action URL."""
    assert twiml.gather_speech("https://x/twilio/gather", say_or_play="שלום") == (
        DECL + '<Response><Gather action="https://x/twilio/gather" input="speech" '
        'language="he-IL" method="POST" speechTimeout="auto" timeout="5">'
        '<Say language="he-IL" voice="Google.he-IL-Standard-A">שלום</Say></Gather></Response>'
    )


def test_gather_speech_plays_a_url_prompt() -> None:
    """An http(s) prompt is played rather than spoken."""
    assert "<Play>https://x/a.wav</Play></Gather>" in twiml.gather_speech(
        "https://x/g", say_or_play="https://x/a.wav"
    )


def test_dial_hangup_play_say() -> None:
    """The one-verb documents are exactly Twilio's."""
    assert twiml.dial("+972501234567") == DECL + "<Response><Dial>+972501234567</Dial></Response>"
    assert twiml.hangup() == DECL + "<Response><Hangup /></Response>"
    assert (
        twiml.play("https://x/a.wav") == DECL + "<Response><Play>https://x/a.wav</Play></Response>"
    )
    assert twiml.say("להתראות", voice=None) == (
        DECL + '<Response><Say language="he-IL">להתראות</Say></Response>'
    )
