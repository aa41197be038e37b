"""TwiML documents our webhooks answer with, built by Twilio's own ``VoiceResponse``.

Each function returns a complete ``<Response>`` document as a string (with the
XML declaration), ready to be served as ``application/xml``. Values are escaped
by the Twilio library; nothing here concatenates XML by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from twilio.twiml.voice_response import Gather, VoiceResponse

HEBREW_LANGUAGE = "he-IL"
DEFAULT_HEBREW_VOICE = "Google.he-IL-Standard-A"
"""Twilio's Polly voices have no Hebrew; its Google voices do."""
DEFAULT_GATHER_TIMEOUT_S = 5
"""Seconds Twilio waits for the caller to start speaking before giving up on ``<Gather>``."""
SPEECH_TIMEOUT_AUTO = "auto"
"""Let Twilio end speech input at the first natural pause."""
TWIML_CONTENT_TYPE = "application/xml"
GATHER_INPUT = "dtmf speech"
"""The caller may answer by voice or by pressing one key."""
GATHER_NUM_DIGITS = 1

_PLAYABLE_PREFIXES = ("https://", "http://")


def connect_stream(url: str, parameters: Mapping[str, str]) -> str:
    """``<Connect><Stream url=…>`` with one ``<Parameter>`` per item: a bidirectional stream.

    Twilio refuses query strings on the stream URL; per-call values (the stream
    token, ids) travel as parameters and come back in ``start.customParameters``.
    """
    if "?" in url:
        raise ValueError("a <Stream> URL may not carry a query string; use parameters")
    response = VoiceResponse()
    connect = response.connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    return str(response)


def gather_speech(
    action_url: str,
    *,
    say_or_play: str,
    language: str = HEBREW_LANGUAGE,
    voice: str | None = DEFAULT_HEBREW_VOICE,
    timeout_s: int = DEFAULT_GATHER_TIMEOUT_S,
    speech_timeout: str = SPEECH_TIMEOUT_AUTO,
    hints: str | None = None,
) -> str:
    """``<Gather input="speech">`` that prompts, then posts ``SpeechResult`` to ``action_url``.

    ``say_or_play`` is played when it is an http(s) URL and spoken otherwise.
    """
    response = VoiceResponse()
    gather = response.gather(
        input="speech",
        action=action_url,
        method="POST",
        language=language,
        timeout=timeout_s,
        speech_timeout=speech_timeout,
        hints=hints,
    )
    if say_or_play.startswith(_PLAYABLE_PREFIXES):
        gather.play(say_or_play)
    else:
        gather.say(say_or_play, language=language, voice=voice)
    return str(response)


def dial(number: str, *, caller_id: str | None = None) -> str:
    """``<Dial>number</Dial>``: bridge the caller to a human."""
    response = VoiceResponse()
    response.dial(number, caller_id=caller_id)
    return str(response)


def redirect(url: str) -> str:
    """``<Redirect method="POST">url</Redirect>``: Twilio fetches its next TwiML from ``url``
    (a draining instance hands the call back to the load balancer this way)."""
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return str(response)


def hangup() -> str:
    """``<Hangup/>``: end the call."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def play(url: str) -> str:
    """``<Play>url</Play>``: play an audio file."""
    response = VoiceResponse()
    response.play(url)
    return str(response)


def say(
    text: str, *, language: str = HEBREW_LANGUAGE, voice: str | None = DEFAULT_HEBREW_VOICE
) -> str:
    """``<Say>``: Twilio's own text-to-speech, in Hebrew by default."""
    response = VoiceResponse()
    response.say(text, language=language, voice=voice)
    return str(response)


@dataclass(frozen=True, slots=True)
class Speech:
    """What the agent says in one TwiML answer: ``<Play>`` each audio URL, in order; with
    no URLs (no TTS available), ``<Say>`` the text with Twilio's Hebrew voice."""

    text: str
    audio_urls: tuple[str, ...] = ()


def _speak(
    parent: VoiceResponse | Gather,
    speech: Speech,
    *,
    language: str = HEBREW_LANGUAGE,
    voice: str | None,
) -> None:
    if speech.audio_urls:
        for url in speech.audio_urls:
            parent.play(url)
    elif speech.text:
        parent.say(speech.text, language=language, voice=voice)


def gather_turn(
    action_url: str,
    speech: Speech,
    *,
    language: str = HEBREW_LANGUAGE,
    voice: str | None = DEFAULT_HEBREW_VOICE,
    timeout_s: int = DEFAULT_GATHER_TIMEOUT_S,
    speech_timeout: str = SPEECH_TIMEOUT_AUTO,
) -> str:
    """One turn of a ``<Gather>`` conversation: speak inside ``<Gather>`` (so the caller may
    interrupt), then Twilio posts ``SpeechResult`` or ``Digits`` to ``action_url`` — also
    when the caller said nothing (``actionOnEmptyResult``), so silence is a turn too."""
    response = VoiceResponse()
    gather = response.gather(
        input=GATHER_INPUT,
        action=action_url,
        method="POST",
        language=language,
        timeout=timeout_s,
        speech_timeout=speech_timeout,
        num_digits=GATHER_NUM_DIGITS,
        action_on_empty_result=True,
    )
    _speak(gather, speech, language=language, voice=voice)
    return str(response)


def speak_then_hangup(
    speech: Speech, *, language: str = HEBREW_LANGUAGE, voice: str | None = DEFAULT_HEBREW_VOICE
) -> str:
    """Say the last words, then ``<Hangup/>``."""
    response = VoiceResponse()
    _speak(response, speech, language=language, voice=voice)
    response.hangup()
    return str(response)


def speak_then_dial(
    speech: Speech,
    number: str,
    *,
    caller_id: str | None = None,
    language: str = HEBREW_LANGUAGE,
    voice: str | None = DEFAULT_HEBREW_VOICE,
) -> str:
    """Say the hand-over sentence, then ``<Dial>`` the human."""
    response = VoiceResponse()
    _speak(response, speech, language=language, voice=voice)
    response.dial(number, caller_id=caller_id)
    return str(response)
