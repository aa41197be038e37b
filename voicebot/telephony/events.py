"""Twilio Media Streams messages, as the server sees them.

This module owns the JSON wire of a bidirectional ``<Connect><Stream>``:

* :func:`parse_event` turns every message Twilio sends (``connected``, ``start``,
  ``media``, ``dtmf``, ``mark``, ``stop``) into a frozen dataclass, decoding the
  base64 μ-law payload of ``media`` into bytes;
* :func:`media_message`, :func:`mark_message` and :func:`clear_message` build the
  three messages a server may send back, byte-for-byte as Twilio documents them.

Twilio sends ``sequenceNumber``, ``chunk`` and ``timestamp`` as decimal strings;
they become ints here. ``media`` arrives 50 times a second per call: a message in
Twilio's exact compact layout is matched by one compiled regular expression (no
escapes can occur in it, so its groups are the JSON values) and its payload decoded
in C; anything else takes the general path, ``json.loads`` and the field checks.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voicebot.errors import InvalidInputError

ULAW_ENCODING = "audio/x-mulaw"
"""The only encoding Twilio uses on Media Streams, in both directions."""

MAX_MESSAGE_CHARS = 64 * 1024
"""Longest message parsed; Twilio's largest (``start`` with its parameters) is a few KB,
so anything longer is junk and is dropped before ``json.loads`` sees it."""


DTMF_DIGITS = frozenset("0123456789*#")
"""The keys Twilio reports in ``dtmf`` (one per message)."""

_MEDIA_PREFIX = '{"event":"media","streamSid":%s,"media":{"payload":"'
_MEDIA_SUFFIX = '"}}'

_TWILIO_MEDIA = re.compile(
    r'\{"event":"media","sequenceNumber":"[0-9]{1,18}",'
    r'"media":\{"track":"([a-z_]{1,32})","chunk":"([0-9]{1,18})","timestamp":"([0-9]{1,18})",'
    r'"payload":"([A-Za-z0-9+/]*={0,2})"\},"streamSid":"([A-Za-z0-9]{1,64})"\}'
)
"""A ``media`` message exactly as Twilio lays it out (compact, this key order). Every
group is free of quotes and backslashes, so it is the JSON string's value verbatim."""


class MalformedEventError(InvalidInputError):
    """A Media Streams message was not JSON, named an unknown event, or lacked a field.

    ``details["reason"]`` names the kind (``binary``, ``oversized``, ``not_json``,
    ``unknown_event``, ``bad_field``), so the route can log each kind once per call.
    """

    code = "malformed_stream_event"

    @property
    def reason(self) -> str:
        details = self.details if isinstance(self.details, dict) else {}
        return str(details.get("reason", "bad_field"))


@dataclass(frozen=True, slots=True)
class Connected:
    """First message on the socket: names the protocol of the messages that follow."""

    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """Audio format of the stream (always μ-law, 8000 Hz, mono on Twilio)."""

    encoding: str
    sample_rate_hz: int
    channels: int


@dataclass(frozen=True, slots=True)
class Start:
    """Stream metadata, sent once right after ``connected``."""

    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str] = field(hash=False)
    media_format: MediaFormat
    sequence_number: int


@dataclass(slots=True)
class Media:
    """20 ms of caller audio; ``payload`` is the decoded μ-law bytes (160 of them).

    Not frozen, unlike the other events: one is built for every frame (50 a second per
    call), and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__`` (1.8 µs against 0.5 µs per frame here). Nothing keeps one."""

    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A key the caller pressed (``0``-``9``, ``*``, ``#``)."""

    stream_sid: str
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    """Twilio finished playing the audio sent before the mark of this name (or cleared it)."""

    stream_sid: str
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The stream ended (hang-up, or the call left the ``<Connect>``)."""

    stream_sid: str
    call_sid: str


InboundEvent = Connected | Start | Media | Dtmf | Mark | Stop


def parse_frame(text: str | None, data: bytes | None = None) -> InboundEvent:
    """Parse one websocket frame: ``text`` for a text frame, ``data`` for a binary one.

    Twilio sends only text frames; a binary frame, a message over ``MAX_MESSAGE_CHARS``
    and anything :func:`parse_event` refuses raise :class:`MalformedEventError`.
    """
    if text is None:
        size = 0 if data is None else len(data)
        raise MalformedEventError(
            "binary stream frame", details={"reason": "binary", "bytes": size}
        )
    if len(text) > MAX_MESSAGE_CHARS:
        raise MalformedEventError(
            "stream message too long", details={"reason": "oversized", "chars": len(text)}
        )
    return parse_event(text)


def parse_event(text: str | bytes) -> InboundEvent:
    """Parse one Media Streams message from Twilio.

    Raises :class:`MalformedEventError` on invalid JSON (deeply nested included), an
    unknown ``event``, a missing or mistyped field, or a payload that is not valid base64.
    """
    if type(text) is str:
        matched = _TWILIO_MEDIA.fullmatch(text)
        if matched is not None:
            track, chunk, timestamp, payload, stream_sid = matched.groups()
            try:
                audio = binascii.a2b_base64(payload, strict_mode=True)
            except binascii.Error:
                pass  # the general path raises it as MalformedEventError
            else:
                return Media(stream_sid, track, int(chunk), int(timestamp), audio)
    return _parse_json_event(text)


def _parse_json_event(text: str | bytes) -> InboundEvent:
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedEventError(
            f"stream message is not JSON: {str(exc)[:100]}", details={"reason": "not_json"}
        ) from exc
    if not isinstance(message, dict):
        raise MalformedEventError(
            "stream message is not a JSON object", details={"reason": "not_json"}
        )
    event = message.get("event")
    try:
        if event == "media":
            media = message["media"]
            return Media(
                stream_sid=message["streamSid"],
                track=media.get("track", "inbound"),
                chunk=int(media["chunk"]),
                timestamp_ms=int(media["timestamp"]),
                payload=binascii.a2b_base64(media["payload"], strict_mode=True),
            )
        parser = _PARSERS.get(event) if isinstance(event, str) else None
        if parser is None:
            shown = event[:40] if isinstance(event, str) else type(event).__name__
            raise MalformedEventError(
                f"unknown stream event {shown!r}",
                details={"reason": "unknown_event", "event": shown},
            )
        return parser(message)
    except MalformedEventError:
        raise
    except binascii.Error as exc:
        raise MalformedEventError(f"{event} payload is not valid base64: {exc}") from exc
    except KeyError as exc:
        raise MalformedEventError(
            f"{event} message lacks field {exc.args[0]!r}", details={"field": exc.args[0]}
        ) from exc
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise MalformedEventError(f"{event} message has a mistyped field: {exc}") from exc


def _parse_connected(message: dict[str, Any]) -> Connected:
    return Connected(protocol=_str(message["protocol"]), version=_str(message["version"]))


def _parse_start(message: dict[str, Any]) -> Start:
    start = message["start"]
    fmt = start["mediaFormat"]
    raw_params = start.get("customParameters") or {}
    if not isinstance(raw_params, dict):
        raise TypeError("customParameters is not an object")
    return Start(
        stream_sid=_str(message.get("streamSid") or start["streamSid"]),
        call_sid=_str(start["callSid"]),
        account_sid=_str(start["accountSid"]),
        tracks=tuple(_str(t) for t in start["tracks"]),
        custom_parameters={_str(k): _str(v) for k, v in raw_params.items()},
        media_format=MediaFormat(
            encoding=_str(fmt["encoding"]),
            sample_rate_hz=int(fmt["sampleRate"]),
            channels=int(fmt["channels"]),
        ),
        sequence_number=int(message["sequenceNumber"]),
    )


def _parse_dtmf(message: dict[str, Any]) -> Dtmf:
    digit = _str(message["dtmf"]["digit"])
    if digit not in DTMF_DIGITS:
        # Each key interrupts the agent: a peer sending anything else must not cut it.
        raise ValueError(f"not a DTMF key: {digit[:10]!r}")
    return Dtmf(stream_sid=_str(message["streamSid"]), digit=digit)


def _parse_mark(message: dict[str, Any]) -> Mark:
    return Mark(stream_sid=_str(message["streamSid"]), name=_str(message["mark"]["name"]))


def _parse_stop(message: dict[str, Any]) -> Stop:
    return Stop(stream_sid=_str(message["streamSid"]), call_sid=_str(message["stop"]["callSid"]))


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


_PARSERS: dict[str, Callable[[dict[str, Any]], InboundEvent]] = {
    "connected": _parse_connected,
    "start": _parse_start,
    "dtmf": _parse_dtmf,
    "mark": _parse_mark,
    "stop": _parse_stop,
}


def media_message(stream_sid: str, payload: bytes) -> str:
    """Outbound ``media``: μ-law bytes for Twilio to play to the caller, in order."""
    # Sent 50 times a second per call: the call's prefix (SID JSON-escaped) is built once.
    encoded = binascii.b2a_base64(payload, newline=False).decode("ascii")
    return _media_prefix(stream_sid) + encoded + _MEDIA_SUFFIX


@functools.lru_cache(maxsize=1024)
def _media_prefix(stream_sid: str) -> str:
    """The start of a call's outbound ``media`` messages, up to the payload's quote."""
    return _MEDIA_PREFIX % json.dumps(stream_sid)


def mark_message(stream_sid: str, name: str) -> str:
    """Outbound ``mark``: Twilio echoes it once the audio sent before it has played."""
    return json.dumps(
        {"event": "mark", "streamSid": stream_sid, "mark": {"name": name}},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def clear_message(stream_sid: str) -> str:
    """Outbound ``clear``: drop all buffered audio; Twilio then echoes every pending mark."""
    return json.dumps({"event": "clear", "streamSid": stream_sid}, separators=(",", ":"))
