"""The direct receiver under a hostile or unlucky client: what it declines (a `stop`, a
key) is never overtaken by the messages behind it, whatever the TCP boundaries."""

from __future__ import annotations

import asyncio
import json

import pytest
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Opcode

from tests.unit.api.test_websocket_protocol import (
    MEDIA,
    Connection,
    DirectConnection,
    both,
    frame,
    settle,
)
from voicebot.api.websocket_protocol import DIRECT_RECEIVE_EXTENSION, WebSocketProtocol

STOP = json.dumps({"event": "stop", "sequenceNumber": "9", "streamSid": "MZ" + "a" * 32})
DTMF = json.dumps({"event": "dtmf", "streamSid": "MZ" + "a" * 32, "dtmf": {"digit": "5"}})


def media_only(text: str) -> bool:
    """The media route's receiver: takes media, leaves everything else to receive()."""
    return '"event":"media"' in text


async def test_media_after_a_declined_stop_in_the_same_read_waits_behind_it() -> None:
    """`stop` then media in one TCP read: the media is not taken before the app has seen
    the stop (Twilio's order is the call's order)."""
    connection = DirectConnection(media_only)
    await connection.open()
    await connection.feed([frame(Opcode.TEXT, STOP.encode()) + frame(Opcode.TEXT, MEDIA.encode())])
    assert connection.direct == []
    assert [m.get("text") for m in connection.received] == [STOP, MEDIA, None]


async def test_media_in_a_later_read_waits_behind_a_queued_key() -> None:
    """A key still waiting in the queue for receive() is not overtaken by the media of the
    next read (the app is busy: the library's path, not only the fast lane)."""
    connection = DirectConnection(media_only)
    await connection.open()
    protocol = connection.protocol
    protocol.data_received(frame(Opcode.TEXT, DTMF.encode()))
    # The app has not run yet; a fragmented media message arrives through the library.
    half = len(MEDIA) // 2
    protocol.data_received(
        frame(Opcode.TEXT, MEDIA[:half].encode(), fin=False)
        + frame(Opcode.CONT, MEDIA[half:].encode())
    )
    protocol.data_received(frame(Opcode.TEXT, MEDIA.encode()))
    await connection.feed([])
    assert connection.direct == []
    assert [m.get("text") for m in connection.received] == [DTMF, MEDIA, MEDIA, None]


async def test_a_receiver_set_behind_a_declined_message_takes_nothing_past_it() -> None:
    """Queued before the receiver was set: a message it declines keeps those behind it
    queued, in order."""
    connection = Connection(WebSocketProtocol)
    await connection.open()
    queue = connection.protocol.queue
    for text in (MEDIA, DTMF, MEDIA):
        queue.put_nowait({"type": "websocket.receive", "text": text})
    taken: list[str] = []

    def take(text: str) -> bool:
        if not media_only(text):
            return False
        taken.append(text)
        return True

    connection.protocol.scope["extensions"][DIRECT_RECEIVE_EXTENSION](take)
    await settle()
    await connection.feed([])
    assert taken == [MEDIA]
    assert [m.get("text") for m in connection.received] == [DTMF, MEDIA, None]


@pytest.mark.parametrize("protocol_class", [WebSocketsSansIOProtocol, WebSocketProtocol])
async def test_a_send_to_a_stalled_reader_waits_for_the_transport_to_drain(
    protocol_class: type[WebSocketsSansIOProtocol],
) -> None:
    """A reader that stalls (the transport's buffer is full: pause_writing): a send writes
    nothing and waits until resume_writing, then writes the frame; a connection lost
    meanwhile fails it as uvicorn does."""
    connection = Connection(protocol_class)
    await connection.open()
    protocol, written = connection.protocol, connection.transport.written
    before = len(written)
    protocol.pause_writing()
    send = asyncio.create_task(protocol.send({"type": "websocket.send", "text": "שלום"}))
    await settle()
    assert not send.done()
    assert len(written) == before
    protocol.resume_writing()
    await send
    assert bytes(written[before:]) == frame(Opcode.TEXT, "שלום".encode(), mask=False)
    protocol.pause_writing()
    lost = asyncio.create_task(protocol.send({"type": "websocket.send", "text": "שוב"}))
    await settle()
    protocol.connection_lost(None)
    with pytest.raises(ClientDisconnected):
        await lost
    await settle()


def _masked_text(payload: bytes, length_bytes: bytes) -> bytes:
    """A masked text frame whose length is encoded as ``length_bytes`` (2nd byte on)."""
    mask = bytes((1, 2, 3, 4))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x81,)) + bytes((length_bytes[0] | 0x80,)) + length_bytes[1:] + mask + masked


@pytest.mark.parametrize(
    "data",
    [
        _masked_text("שלום".encode(), bytes((126, 0, 8))),  # 16-bit length for 8 bytes
        _masked_text(b"hello", bytes((127,)) + (5).to_bytes(8, "big")),  # 64-bit for 5
        bytes((0x81, 0xFF)) + (2**63 + 5).to_bytes(8, "big") + b"\0\0\0\0",  # top bit set
        _masked_text(b"x", bytes((126, 0, 1))) * 3,
    ],
)
async def test_odd_length_encodings_give_what_uvicorn_gives(data: bytes) -> None:
    """Lengths in a longer form than needed, and a 64-bit length with its top bit set:
    the same messages and close as uvicorn's protocol, whole and cut at every byte."""
    library, fast = await both([data])
    assert fast == library
    library, fast = await both([data[i : i + 1] for i in range(len(data))])
    assert fast == library
