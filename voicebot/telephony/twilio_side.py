"""The Twilio side of the Media Streams wire, for simulators and tests.

:mod:`voicebot.telephony.events` is what our server speaks; this module is its
mirror: it builds the messages *Twilio* sends (``connected``, ``start``, ``media``,
``dtmf``, ``mark``, ``stop``) and parses the three messages Twilio receives
(``media``, ``mark``, ``clear``). The caller simulator uses it, so the shapes
live next to the server-side parser and are tested against it.

``media`` is built with a pre-formatted template: the load test sends it
50 times a second for every simulated call.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from voicebot.telephony.events import ULAW_ENCODING, MalformedEventError

PROTOCOL_NAME = "Call"
PROTOCOL_VERSION = "1.0.0"
STREAM_SAMPLE_RATE_HZ = 8000
STREAM_CHANNELS = 1
INBOUND_TRACK = "inbound"
DTMF_TRACK = "inbound_track"
"""Twilio labels the track of ``dtmf`` events ``inbound_track``, unlike ``media``."""

_MEDIA_TEMPLATE = (
    '{"event":"media","sequenceNumber":"%d","media":{"track":"%s","chunk":"%d",'
    '"timestamp":"%d","payload":"%s"},"streamSid":"%s"}'
)


def connected_message() -> str:
    """The first message Twilio sends once the socket is open."""
    return json.dumps(
        {"event": "connected", "protocol": PROTOCOL_NAME, "version": PROTOCOL_VERSION}
    )


def start_message(
    *,
    stream_sid: str,
    call_sid: str,
    account_sid: str,
    custom_parameters: Mapping[str, str],
    sequence_number: int = 1,
    tracks: tuple[str, ...] = (INBOUND_TRACK,),
) -> str:
    """The ``start`` message: stream and call ids, tracks, format and ``<Parameter>`` values."""
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": str(sequence_number),
            "start": {
                "accountSid": account_sid,
                "streamSid": stream_sid,
                "callSid": call_sid,
                "tracks": list(tracks),
                "mediaFormat": {
                    "encoding": ULAW_ENCODING,
                    "sampleRate": STREAM_SAMPLE_RATE_HZ,
                    "channels": STREAM_CHANNELS,
                },
                "customParameters": dict(custom_parameters),
            },
            "streamSid": stream_sid,
        },
        ensure_ascii=False,
    )


def encode_payload(payload: bytes) -> str:
    """Base64 of μ-law bytes, as carried in ``media.payload``."""
    return binascii.b2a_base64(payload, newline=False).decode("ascii")


def inbound_media_message(
    *,
    stream_sid: str,
    sequence_number: int,
    chunk: int,
    timestamp_ms: int,
    payload_b64: str,
    track: str = INBOUND_TRACK,
) -> str:
    """One ``media`` message from Twilio; ``payload_b64`` comes from :func:`encode_payload`."""
    return _MEDIA_TEMPLATE % (sequence_number, track, chunk, timestamp_ms, payload_b64, stream_sid)


def dtmf_message(*, stream_sid: str, sequence_number: int, digit: str) -> str:
    """A ``dtmf`` message for one key press."""
    return json.dumps(
        {
            "event": "dtmf",
            "streamSid": stream_sid,
            "sequenceNumber": str(sequence_number),
            "dtmf": {"track": DTMF_TRACK, "digit": digit},
        }
    )


def mark_echo_message(*, stream_sid: str, sequence_number: int, name: str) -> str:
    """The ``mark`` Twilio sends back when playback reaches (or a ``clear`` drops) a mark."""
    return json.dumps(
        {
            "event": "mark",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "mark": {"name": name},
        },
        ensure_ascii=False,
    )


def stop_message(*, stream_sid: str, sequence_number: int, account_sid: str, call_sid: str) -> str:
    """The ``stop`` message Twilio sends when the call or the stream ends."""
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": str(sequence_number),
            "streamSid": stream_sid,
            "stop": {"accountSid": account_sid, "callSid": call_sid},
        }
    )


@dataclass(frozen=True, slots=True)
class OutboundMedia:
    """Audio the server asked Twilio to play (decoded μ-law, any length)."""

    stream_sid: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboundMark:
    """A mark the server placed after the audio sent so far."""

    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class OutboundClear:
    """The server asked Twilio to drop all buffered audio."""

    stream_sid: str


OutboundEvent = OutboundMedia | OutboundMark | OutboundClear


def parse_outbound(text: str | bytes) -> OutboundEvent:
    """Parse a message a server sends to Twilio; raise :class:`MalformedEventError` otherwise.

    Twilio closes the stream (error 31924) on anything but ``media``, ``mark`` and
    ``clear`` with these fields, so the simulator is just as strict.
    """
    try:
        message = json.loads(text)
        event = message["event"]
        stream_sid = message["streamSid"]
        if not isinstance(stream_sid, str):
            raise TypeError("streamSid is not a string")
        if event == "media":
            payload = binascii.a2b_base64(message["media"]["payload"], strict_mode=True)
            return OutboundMedia(stream_sid=stream_sid, payload=payload)
        if event == "mark":
            name = message["mark"]["name"]
            if not isinstance(name, str):
                raise TypeError("mark.name is not a string")
            return OutboundMark(stream_sid=stream_sid, name=name)
        if event == "clear":
            return OutboundClear(stream_sid=stream_sid)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise MalformedEventError(f"invalid message to Twilio: {exc!r}") from exc
    raise MalformedEventError(f"Twilio accepts no {event!r} message from the server")
