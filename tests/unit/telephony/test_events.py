"""Media Streams messages: parsing Twilio's JSON and building the server's replies."""

from __future__ import annotations

import base64
import json
import time

import pytest

from voicebot.errors import InvalidInputError
from voicebot.telephony import twilio_side
from voicebot.telephony.events import (
    Connected,
    Dtmf,
    MalformedEventError,
    Mark,
    Media,
    MediaFormat,
    Start,
    Stop,
    clear_message,
    mark_message,
    media_message,
    parse_event,
    parse_frame,
)

STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA2c1b4e8a3f0d4c6e9b7a5f3e1d2c4b6a"
ACCOUNT = "AC00000000000000000000000000000000"
FRAME = bytes(range(160))

CONNECTED = '{"event": "connected", "protocol": "Call", "version": "1.0.0"}'
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": ACCOUNT,
            "streamSid": STREAM,
            "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"token": "v1.7.CA.1", "lead": "שלום"},
        },
        "streamSid": STREAM,
    }
)
MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": "3",
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "5",
            "payload": base64.b64encode(FRAME).decode(),
        },
        "streamSid": STREAM,
    }
)
DTMF = json.dumps(
    {
        "event": "dtmf",
        "streamSid": STREAM,
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
)
MARK = json.dumps(
    {"event": "mark", "sequenceNumber": "4", "streamSid": STREAM, "mark": {"name": "s1"}}
)
STOP = json.dumps(
    {
        "event": "stop",
        "sequenceNumber": "5",
        "streamSid": STREAM,
        "stop": {"accountSid": ACCOUNT, "callSid": CALL},
    }
)


def test_connected_parses() -> None:
    """`connected` yields its protocol and version."""
    assert parse_event(CONNECTED) == Connected(protocol="Call", version="1.0.0")


def test_start_parses_every_field() -> None:
    """`start` yields ids, tracks, custom parameters, media format and sequence number."""
    event = parse_event(START)
    assert event == Start(
        stream_sid=STREAM,
        call_sid=CALL,
        account_sid=ACCOUNT,
        tracks=("inbound",),
        custom_parameters={"token": "v1.7.CA.1", "lead": "שלום"},
        media_format=MediaFormat(encoding="audio/x-mulaw", sample_rate_hz=8000, channels=1),
        sequence_number=1,
    )


def test_media_decodes_payload_and_string_counters() -> None:
    """`media` turns the string chunk/timestamp into ints and the base64 into μ-law bytes."""
    assert parse_event(MEDIA) == Media(
        stream_sid=STREAM, track="inbound", chunk=1, timestamp_ms=5, payload=FRAME
    )


def test_media_accepts_bytes_input() -> None:
    """A binary websocket frame holding the same JSON parses the same."""
    assert parse_event(MEDIA.encode()) == parse_event(MEDIA)


def test_dtmf_mark_stop_parse() -> None:
    """`dtmf`, `mark` and `stop` yield their digit, name and call SID."""
    assert parse_event(DTMF) == Dtmf(stream_sid=STREAM, digit="1")
    assert parse_event(MARK) == Mark(stream_sid=STREAM, name="s1")
    assert parse_event(STOP) == Stop(stream_sid=STREAM, call_sid=CALL)


def test_twilio_side_builders_round_trip_through_the_parser() -> None:
    """Messages the simulator sends as Twilio parse back to the values they were built from."""
    assert parse_event(twilio_side.connected_message()) == Connected("Call", "1.0.0")
    start = parse_event(
        twilio_side.start_message(
            stream_sid=STREAM, call_sid=CALL, account_sid=ACCOUNT, custom_parameters={"a": "b"}
        )
    )
    assert isinstance(start, Start) and start.custom_parameters == {"a": "b"}
    media = twilio_side.inbound_media_message(
        stream_sid=STREAM,
        sequence_number=2,
        chunk=1,
        timestamp_ms=20,
        payload_b64=twilio_side.encode_payload(FRAME),
    )
    assert parse_event(media) == Media(STREAM, "inbound", 1, 20, FRAME)
    assert parse_event(
        twilio_side.dtmf_message(stream_sid=STREAM, sequence_number=3, digit="#")
    ) == Dtmf(STREAM, "#")
    assert parse_event(
        twilio_side.mark_echo_message(stream_sid=STREAM, sequence_number=4, name="x")
    ) == Mark(STREAM, "x")
    assert parse_event(
        twilio_side.stop_message(
            stream_sid=STREAM, sequence_number=5, account_sid=ACCOUNT, call_sid=CALL
        )
    ) == Stop(STREAM, CALL)


def test_outbound_messages_are_exact_twilio_json() -> None:
    """media/mark/clear serialise to exactly the documented shapes."""
    assert json.loads(media_message(STREAM, FRAME)) == {
        "event": "media",
        "streamSid": STREAM,
        "media": {"payload": base64.b64encode(FRAME).decode()},
    }
    assert json.loads(mark_message(STREAM, "משפט-1")) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": "משפט-1"},
    }
    assert (
        clear_message(STREAM)
        == '{"event":"clear","streamSid":"MZ18ad3ab5a668481ce02b83e7395059f0"}'
    )


def test_outbound_messages_parse_on_the_twilio_side() -> None:
    """The simulator's parser reads back what the server serialises."""
    assert twilio_side.parse_outbound(media_message(STREAM, FRAME)) == twilio_side.OutboundMedia(
        STREAM, FRAME
    )
    assert twilio_side.parse_outbound(mark_message(STREAM, "m")) == twilio_side.OutboundMark(
        STREAM, "m"
    )
    assert twilio_side.parse_outbound(clear_message(STREAM)) == twilio_side.OutboundClear(STREAM)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"event": "hello", "streamSid": "MZ1"}',
        '{"streamSid": "MZ1"}',
        '{"event": "media", "streamSid": "MZ1", "media": {"chunk": "1", "timestamp": "0"}}',
        '{"event": "media", "streamSid": "MZ1", "media": {"chunk": "x", "timestamp": "0",'
        ' "payload": ""}}',
        '{"event": "media", "streamSid": "MZ1", "media": {"chunk": "1", "timestamp": "0",'
        ' "payload": "%%%"}}',
        '{"event": "media", "streamSid": "MZ1", "media": "oops"}',
        '{"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {}}',
        '{"event": "mark", "streamSid": "MZ1", "mark": {"name": 5}}',
        '{"event": "stop", "streamSid": "MZ1"}',
        '{"event": "dtmf", "streamSid": "MZ1", "dtmf": {}}',
    ],
)
def test_malformed_messages_raise_malformed_event_error(text: str) -> None:
    """Bad JSON, unknown events, missing or mistyped fields and bad base64 raise one error type."""
    with pytest.raises(MalformedEventError) as info:
        parse_event(text)
    assert isinstance(info.value, InvalidInputError)


@pytest.mark.parametrize(
    ("text", "data", "reason"),
    [
        (None, b"\x00\x01binary", "binary"),
        ("[" * 50_000 + "]" * 50_000, None, "oversized"),
        ("[" * 30_000 + "]" * 30_000, None, "not_json"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, None, "not_json"),
        ('{"event": "media", "streamSid": "MZ1", "media": ' + "[" * 20_000 + "]" * 20_000 + "}",
         None, "not_json"),
        ('{"event": "x-unknown", "streamSid": "MZ1"}', None, "unknown_event"),
        ('{"event": {"nested": 1}}', None, "unknown_event"),
    ],
)  # fmt: skip
def test_any_frame_is_refused_with_its_reason(
    text: str | None, data: bytes | None, reason: str
) -> None:
    """Binary frames, oversized and deeply nested JSON, and unknown events raise the one
    error type with a reason, never RecursionError or KeyError."""
    with pytest.raises(MalformedEventError) as info:
        parse_frame(text, data)
    assert info.value.reason == reason


def test_twilio_rejects_unknown_server_messages() -> None:
    """The simulator refuses a message Twilio would refuse (error 31924)."""
    with pytest.raises(MalformedEventError):
        twilio_side.parse_outbound('{"event": "start", "streamSid": "MZ1"}')


def test_media_parse_is_fast() -> None:
    """Parsing one 20 ms media message stays far below its 20 ms budget (< 50 µs)."""
    rounds = 20_000
    began = time.perf_counter()
    for _ in range(rounds):
        parse_event(MEDIA)
    per_message_us = (time.perf_counter() - began) / rounds * 1e6
    assert per_message_us < 50, f"{per_message_us:.1f} µs per media message"


@pytest.mark.parametrize("digit", ["", "12", "a", "٣", "9" * 1000, "\u200f1"])
def test_dtmf_other_than_one_key_is_malformed(digit: str) -> None:
    """A `dtmf` whose digit is not one of Twilio's keys (0-9, *, #) is malformed: every key
    interrupts the agent, so a peer sending junk digits must not cut its replies."""
    text = json.dumps({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"digit": digit}})
    with pytest.raises(MalformedEventError):
        parse_event(text)


def _twilio_media(payload_b64: str, *, stream_sid: str = STREAM, track: str = "inbound") -> str:
    """A ``media`` message in Twilio's own compact layout (the parser's fast path)."""
    return twilio_side.inbound_media_message(
        stream_sid=stream_sid,
        sequence_number=7,
        chunk=12,
        timestamp_ms=240,
        payload_b64=payload_b64,
        track=track,
    )


@pytest.mark.parametrize("size", [0, 1, 2, 3, 159, 160, 161, 320])
def test_twilio_layout_parses_as_the_json_does(size: int) -> None:
    """A message in Twilio's compact layout parses to exactly what ``json.loads`` reads from
    it, whatever the payload's padding; so does the same message re-serialised with spaces
    and another key order (the general path)."""
    payload = bytes((i * 37) % 256 for i in range(size))
    text = _twilio_media(base64.b64encode(payload).decode())
    expected = Media(STREAM, "inbound", 12, 240, payload)
    assert parse_event(text) == expected
    message = json.loads(text)
    assert parse_event(json.dumps(message, sort_keys=True)) == expected
    assert parse_event(json.dumps(message).encode()) == expected


@pytest.mark.parametrize(
    "payload_b64",
    ["abc", "a", "ab=", "a===", "ab==cd", "=abc"],
)
def test_bad_padding_in_twilio_layout_is_malformed(payload_b64: str) -> None:
    """A payload that is not valid base64 is refused as the general path refuses it, also
    in the compact layout."""
    with pytest.raises(MalformedEventError) as fast:
        parse_event(_twilio_media(payload_b64))
    with pytest.raises(MalformedEventError) as general:
        parse_event(json.dumps(json.loads(_twilio_media(payload_b64)), indent=1))
    assert fast.value.message == general.value.message
    assert fast.value.reason == general.value.reason


def test_unusual_values_in_twilio_layout_take_the_general_path() -> None:
    """A SID with an escape, another track name or a JSON escape in the payload still
    parse as JSON says (the compact pattern only takes values with nothing to unescape)."""
    payload_b64 = base64.b64encode(FRAME).decode()
    escaped = _twilio_media(payload_b64).replace(payload_b64, payload_b64.replace("+", "\\u002b"))
    assert "\\u002b" in escaped
    assert parse_event(escaped) == Media(STREAM, "inbound", 12, 240, FRAME)
    quoted_sid = _twilio_media(payload_b64, stream_sid='MZ\\"1')
    assert parse_event(quoted_sid) == Media('MZ"1', "inbound", 12, 240, FRAME)
    outbound = _twilio_media(payload_b64, track="outbound-2")
    assert parse_event(outbound) == Media(STREAM, "outbound-2", 12, 240, FRAME)


def test_media_message_per_stream_sid() -> None:
    """Each stream's messages carry its own SID, JSON-escaped, however they interleave."""
    odd_sid = 'MZ"\\שלום'
    for sid in (STREAM, odd_sid, STREAM, "MZ2", odd_sid):
        text = media_message(sid, FRAME)
        assert json.loads(text) == {
            "event": "media",
            "streamSid": sid,
            "media": {"payload": base64.b64encode(FRAME).decode()},
        }
    assert media_message("MZ2", b"") == '{"event":"media","streamSid":"MZ2","media":{"payload":""}}'
