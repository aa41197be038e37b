"""The websocket protocol's fast lane against uvicorn's own protocol: the same ASGI messages,
the same bytes on the wire and the same closes, for every kind of frame a client may send,
cut at every TCP boundary."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from voicebot.api.websocket_protocol import (
    DIRECT_RECEIVE_EXTENSION,
    WEBSOCKET_SERVER_OPTIONS,
    WebSocketProtocol,
)

MAX_SIZE = 100_000
SMALL_MAX_SIZE = 1_000  # a limit a 16-bit length can exceed
HANDSHAKE = (
    b"GET /twilio/media HTTP/1.1\r\nHost: voicebot.test\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
MEDIA = (
    '{"event":"media","sequenceNumber":"7","media":{"track":"inbound","chunk":"6",'
    '"timestamp":"120","payload":"' + "/" * 216 + '"},"streamSid":"MZ' + "a" * 32 + '"}'
)
HEBREW = "שלום, מדברים מהמרפאה"
WHOLE_TEXTS = {MEDIA, HEBREW, ""}  # the single-frame texts random_frames() sends, but x*N


class RecordingTransport(asyncio.Transport):
    """What the protocol wrote, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


class Connection:
    """One protocol instance with an app that accepts and records what it receives."""

    def __init__(
        self, protocol_class: type[WebSocketsSansIOProtocol], *, max_size: int = MAX_SIZE
    ) -> None:
        self.received: list[dict[str, Any]] = []
        self.accepted_at = 0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            self.accepted_at = len(self.transport.written)
            while True:
                message = await receive()
                self.received.append(message)
                if message["type"] == "websocket.disconnect":
                    return

        config = uvicorn.Config(
            app,
            log_config=None,
            ws_max_size=max_size,
            **{**WEBSOCKET_SERVER_OPTIONS, "ws": protocol_class},
        )
        config.load()
        self.transport = RecordingTransport()
        self.protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        self.protocol.connection_made(self.transport)

    async def open(self) -> None:
        self.protocol.data_received(HANDSHAKE)
        await settle()
        assert self.accepted_at, "the app did not accept"

    async def feed(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if self.transport.closed:
                break
            self.protocol.data_received(chunk)
            await settle()
        if not self.transport.closed:
            self.protocol.connection_lost(None)
        await settle()

    def outcome(self) -> tuple[list[dict[str, Any]], bytes, bool]:
        return (
            self.received,
            bytes(self.transport.written[self.accepted_at :]),
            self.transport.closed,
        )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def frame(
    opcode: Opcode, data: bytes, *, fin: bool = True, mask: bool = True, rsv1: bool = False
) -> bytes:
    serialized = Frame(opcode, data, fin).serialize(mask=mask)
    return bytes((serialized[0] | 0x40,)) + serialized[1:] if rsv1 else serialized


def random_frames(rng: random.Random) -> list[bytes]:
    """A client's frames: mostly Media Streams text, with every other kind mixed in."""
    kinds = [
        lambda: frame(Opcode.TEXT, MEDIA.encode()),
        lambda: frame(Opcode.TEXT, MEDIA.encode()),
        lambda: frame(Opcode.TEXT, MEDIA.encode()),
        lambda: frame(Opcode.TEXT, HEBREW.encode()),
        lambda: frame(Opcode.TEXT, b""),
        lambda: frame(Opcode.TEXT, b"x" * rng.choice([1, 125, 126, 127, 65535, 65536, 70000])),
        lambda: frame(Opcode.BINARY, bytes(rng.randrange(256) for _ in range(rng.randrange(300)))),
        lambda: frame(Opcode.PING, b"ping"),
        lambda: frame(Opcode.PONG, b"pong"),
        lambda: frame(Opcode.TEXT, b'{"event":', fin=False) + frame(Opcode.CONT, b'"mark"}'),
        lambda: (
            frame(Opcode.TEXT, b"part", fin=False)
            + frame(Opcode.PING, b"")
            + frame(Opcode.CONT, b"!")
        ),
    ]
    rare = [
        lambda: frame(Opcode.TEXT, MEDIA.encode(), mask=False),  # a client must mask: 1002
        lambda: frame(Opcode.TEXT, b"A" * rng.choice([60, 200]), mask=False),  # unmasks to UTF-8
        lambda: frame(Opcode.TEXT, MEDIA.encode(), rsv1=True),  # no extension: 1002
        lambda: frame(Opcode.TEXT, b"\xff\xfe broken utf-8"),  # 1007
        lambda: frame(Opcode.TEXT, b"y" * (SMALL_MAX_SIZE + 1)),  # 1009 at the small limit
        lambda: frame(Opcode.TEXT, b"y" * (MAX_SIZE + 1)),  # 1009
        lambda: frame(Opcode.CONT, b"orphan"),  # 1002
        lambda: bytes((0x83, 0x80, 1, 2, 3, 4)),  # reserved opcode: 1002
        lambda: frame(Opcode.CLOSE, b"\x03\xe8bye"),
    ]
    frames = [rng.choice(kinds)() for _ in range(rng.randrange(1, 12))]
    if rng.random() < 0.4:
        frames.insert(rng.randrange(len(frames) + 1), rng.choice(rare)())
    return frames


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` as TCP would deliver it: whole, in random pieces, or byte by byte."""
    style = rng.random()
    if style < 0.2:
        return [data]
    if style < 0.25 and len(data) < 3000:
        return [data[i : i + 1] for i in range(len(data))]
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(1, 8))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


async def both(chunks: list[bytes], *, max_size: int = MAX_SIZE) -> tuple[Any, Any]:
    outcomes = []
    for protocol_class in (WebSocketsSansIOProtocol, WebSocketProtocol):
        connection = Connection(protocol_class, max_size=max_size)
        await connection.open()
        await connection.feed(chunks)
        outcomes.append(connection.outcome())
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("seed", range(300))
async def test_random_frame_mixes_cut_anywhere_give_what_uvicorn_gives(seed: int) -> None:
    """Random mixes of text, binary, control, fragmented, unmasked, RSV, broken UTF-8,
    oversized and close frames, cut at random TCP boundaries: same messages, bytes, close."""
    rng = random.Random(seed)
    data = b"".join(random_frames(rng))
    library, fast = await both(cut(data, rng), max_size=rng.choice([SMALL_MAX_SIZE, MAX_SIZE]))
    assert same_or_fewer_lost(fast, library)


def same_or_fewer_lost(fast: Any, library: Any) -> bool:
    """Equal outcomes, but for one known difference: when a read ends in a frame the
    library refuses (1002, 1007, 1009), uvicorn drops the messages that came whole before
    it in the same read; the fast lane has already delivered them, in order."""
    if fast == library:
        return True
    (fast_messages, fast_bytes, fast_closed), (messages, written, closed) = fast, library
    refused = messages and messages[-1].get("code") in (1002, 1007, 1009)
    kept = len(messages) - 1
    return bool(
        refused
        and (fast_bytes, fast_closed) == (written, closed)
        and fast_messages[-1] == messages[-1]
        and fast_messages[:kept] == messages[:kept]
        and all(
            m.get("text") in WHOLE_TEXTS or set(m.get("text") or "?") == {"x"}
            for m in fast_messages[kept:-1]
        )
    )


async def test_every_split_point_of_two_media_frames() -> None:
    """Two Media Streams frames split at each byte: both arrive whole, in order."""
    data = frame(Opcode.TEXT, MEDIA.encode()) + frame(Opcode.TEXT, b'{"event":"stop"}')
    for split in range(1, len(data)):
        library, fast = await both([data[:split], data[split:]])
        assert fast == library
        assert [m["text"] for m in fast[0][:2]] == [MEDIA, '{"event":"stop"}']


async def test_whole_text_frames_skip_the_library_parser() -> None:
    """Whole masked text frames never reach the websockets parser (the fast lane is taken)."""
    connection = Connection(WebSocketProtocol)
    await connection.open()
    fed: list[bytes] = []
    library_receive = connection.protocol.conn.receive_data
    connection.protocol.conn.receive_data = lambda data: (fed.append(data), library_receive(data))  # type: ignore[method-assign]
    await connection.feed([frame(Opcode.TEXT, MEDIA.encode()) * 3, frame(Opcode.TEXT, b"{}")])
    assert fed == []
    assert [m.get("text") for m in connection.received] == [MEDIA] * 3 + ["{}", None]


async def test_a_ping_between_media_frames_is_answered_and_the_frames_still_arrive() -> None:
    """A ping mid-stream takes the library's path (pong written) and the lane resumes after."""
    connection = Connection(WebSocketProtocol)
    await connection.open()
    media = frame(Opcode.TEXT, MEDIA.encode())
    await connection.feed([media + frame(Opcode.PING, b"hi") + media, media])
    assert [m.get("text") for m in connection.received] == [MEDIA] * 3 + [None]
    assert frame(Opcode.PONG, b"hi", mask=False) in connection.transport.written


@pytest.mark.parametrize(
    "text", ["", "a", "x" * 125, "x" * 126, "x" * 65535, "x" * 65536, MEDIA, "תודה, להתראות"]
)
async def test_sent_text_frames_are_the_bytes_uvicorn_sends(text: str) -> None:
    """A text message sent by the app: the same frame uvicorn's protocol writes."""
    written = []
    for protocol_class in (WebSocketsSansIOProtocol, WebSocketProtocol):
        connection = Connection(protocol_class)
        await connection.open()
        await connection.protocol.send({"type": "websocket.send", "text": text})
        written.append(bytes(connection.transport.written[connection.accepted_at :]))
    assert written[1] == written[0]


async def test_a_send_after_the_close_fails_as_uvicorn_fails() -> None:
    """After the app's close, a send raises as it does in uvicorn's protocol."""
    errors = []
    for protocol_class in (WebSocketsSansIOProtocol, WebSocketProtocol):
        connection = Connection(protocol_class)
        await connection.open()
        await connection.protocol.send({"type": "websocket.close", "code": 1000})
        with pytest.raises(RuntimeError) as raised:
            await connection.protocol.send({"type": "websocket.send", "text": "שלום"})
        errors.append(str(raised.value))
    assert errors[1] == errors[0]


async def test_an_unmasked_frame_is_refused_even_when_it_would_unmask_to_text() -> None:
    """A client's unmasked text frame is a protocol error (1002), not a message, even when
    its bytes read as a mask and a payload would decode as UTF-8."""
    library, fast = await both([frame(Opcode.TEXT, b"A" * 60, mask=False) + b"AAAA"])
    assert fast == library
    assert fast[0] == [
        {"type": "websocket.disconnect", "code": 1002, "reason": "incorrect masking"}
    ]


class DirectConnection(Connection):
    """A connection whose app takes text messages through the direct receiver."""

    def __init__(self, take: Any = lambda text: True, **kwargs: Any) -> None:
        super().__init__(WebSocketProtocol, **kwargs)
        self.direct: list[str] = []
        self.take = take

    async def open(self) -> None:
        await super().open()
        set_receiver = self.protocol.scope["extensions"][DIRECT_RECEIVE_EXTENSION]
        set_receiver(self.receive_directly)

    def receive_directly(self, text: str) -> bool:
        if not self.take(text):
            return False
        self.direct.append(text)
        self.received.append({"type": "websocket.receive", "text": text, "direct": True})
        return True


@pytest.mark.parametrize("seed", range(100))
async def test_a_direct_receiver_gets_every_text_message_in_order(seed: int) -> None:
    """With a receiver set, text messages (fast lane or library) reach it, binary ones and
    the disconnect come through receive(), and all of them in the order sent (a text
    behind a queued binary message waits for it)."""
    rng = random.Random(seed)
    data = b"".join(random_frames(rng))
    chunks = cut(data, rng)
    library = Connection(WebSocketsSansIOProtocol)
    await library.open()
    await library.feed(chunks)
    direct = DirectConnection()
    await direct.open()
    await direct.feed(chunks)
    in_order = [{k: v for k, v in m.items() if k != "direct"} for m in direct.received]
    assert same_or_fewer_lost((in_order, *direct.outcome()[1:]), library.outcome())
    queued = [m for m in direct.received if m.get("text") is not None and "direct" not in m]
    assert all(  # a text message is queued only behind one that is
        any(m.get("bytes") is not None for m in direct.received[: direct.received.index(q)])
        for q in queued
    )


async def test_messages_a_receiver_declines_or_fails_on_are_queued_in_order() -> None:
    """A declined message goes to receive(), and those behind it too while it waits there
    (in order); a receiver that raises is dropped and that message and the rest are
    queued."""
    texts = [f'{{"event":"mark","n":{i}}}' for i in range(6)]

    def take(text: str) -> bool:
        if text == texts[4]:
            raise RuntimeError("a bug in the receiver")
        return text not in (texts[1], texts[3])

    connection = DirectConnection(take)
    await connection.open()
    await connection.feed([b"".join(frame(Opcode.TEXT, t.encode()) for t in texts)])
    assert connection.direct == [texts[0]]
    assert [m.get("text") for m in connection.received if "direct" not in m] == [*texts[1:], None]
    # Once receive() has taken the queue, the receiver takes messages again; one that
    # raises is dropped for good.
    connection = DirectConnection(take)
    await connection.open()
    for text in texts:
        connection.protocol.data_received(frame(Opcode.TEXT, text.encode()))
        await settle()
    await connection.feed([])
    assert connection.direct == [texts[0], texts[2]]
    assert [m.get("text") for m in connection.received if "direct" not in m] == [
        texts[1],
        texts[3],
        texts[4],
        texts[5],
        None,
    ]


async def test_messages_queued_before_the_receiver_is_set_are_offered_to_it_first() -> None:
    """A receiver set after messages were queued gets them first, in order, up to the
    first it cannot take; the read paused for them resumes."""
    connection = Connection(WebSocketProtocol)
    connection.received = []
    await connection.open()
    # The app is busy: two messages wait in the queue (the read is paused after one).
    connection.protocol.queue.put_nowait({"type": "websocket.receive", "text": "ראשון"})
    connection.protocol.queue.put_nowait({"type": "websocket.receive", "bytes": b"\x00"})
    connection.protocol.queue.put_nowait({"type": "websocket.receive", "text": "שני"})
    connection.protocol.read_paused = True
    connection.transport.reading = False
    taken: list[str] = []
    connection.protocol.scope["extensions"][DIRECT_RECEIVE_EXTENSION](
        lambda text: taken.append(text) is None
    )
    assert taken == ["ראשון"]  # not "שני": it stays behind the binary message, in order
    await settle()
    assert connection.received == [
        {"type": "websocket.receive", "bytes": b"\x00"},
        {"type": "websocket.receive", "text": "שני"},
    ]
    assert connection.transport.reading


async def test_unsetting_the_receiver_sends_messages_to_receive_again() -> None:
    """After set_receiver(None), text messages are queued for receive() again."""
    connection = DirectConnection()
    await connection.open()
    connection.protocol.data_received(frame(Opcode.TEXT, b'"a"'))
    connection.protocol.scope["extensions"][DIRECT_RECEIVE_EXTENSION](None)
    await connection.feed([frame(Opcode.TEXT, b'"b"')])
    assert connection.direct == ['"a"']
    assert [m.get("text") for m in connection.received if "direct" not in m] == ['"b"', None]


async def test_a_frame_whose_rest_looks_like_a_frame_stays_one_frame() -> None:
    """A frame's header arrives alone and its payload reads as a whole frame: the payload
    is still that frame's (the library, mid-frame, gets it), never a message of its own."""
    inner = bytes((0x81, 0x80)) + b"\x00" * 4  # an empty masked text frame, as bytes
    outer = bytes((0x81, 0x80 | len(inner))) + b"\x00" * 4 + inner  # mask 0: payload as is
    library, fast = await both([outer[:6], outer[6:]])
    assert fast == library
    assert fast[0] == [
        {"type": "websocket.disconnect", "code": 1007, "reason": fast[0][0]["reason"]}
    ]
