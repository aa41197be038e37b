"""The server's websocket protocol: uvicorn's websockets-sansio protocol with a fast lane
for the frames a call's Media Stream is made of.

A call is 50 inbound Media Streams messages a second and up to 50 outbound, each one
small text frame. Through uvicorn's protocol every inbound frame walks the `websockets`
library's generator-based parser (reader, header, mask, frame object, opcode enum,
checks) and every outbound one its frame serializer; on a 2-core machine at 200 calls
that was about a third of the server's CPU. The fast lane decodes the common case
directly and hands everything else to the library unchanged:

- **receive**: a whole, unfragmented, masked text frame (FIN, no RSV bits, 7- or 16-bit
  length, within the size limit, valid UTF-8), arriving while the library's parser sits
  between frames, becomes the same ASGI ``websocket.receive`` message uvicorn would
  queue, with the same read pause. Anything else (control frames, binary, fragments,
  partial frames, 64-bit lengths, unmasked or RSV frames, invalid UTF-8, oversized
  frames, a closing connection) goes to the library from that byte on, which answers
  it as before (pong, close 1002/1007/1009, …).
- **direct receive**: an app that cannot afford a queue and a task switch per message
  sets a receiver through the scope's ``voicebot.direct_receive`` extension (a callable
  taking a ``(str) -> bool`` function, or None to unset it). Text messages then go
  straight to it from the socket's read callback, in order; a message it returns False
  for (or raises on) is queued as usual, for ``receive()``, and so is every message
  behind it until ``receive()`` has taken the queue (a ``stop`` is never overtaken by
  the media after it). Messages already queued when it is set are offered to it first.
  Binary messages and the disconnect always come through ``receive()``.
- **send**: a ``websocket.send`` text message on an open connection with nothing else
  pending is framed here (a server frame is unmasked: header + payload, one write).

Both lanes give byte-identical results; ``tests/unit/api/test_websocket_protocol.py``
checks that against the library on random frame mixes cut at random TCP boundaries.
Per-message deflate is not offered (the server's ``ws_per_message_deflate`` is off:
base64 μ-law barely compresses and deflating 100 frames a second per call costs more
than it saves), so frames never carry RSV1 here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import Protocol, State
from websockets.speedups import apply_mask
from websockets.streams import StreamReader

_FIN_TEXT = 0x81  # FIN set, RSV1-3 clear, opcode 1 (text)
_MASKED = 0x80
_LENGTH_16 = 126  # 7-bit length value meaning "a 16-bit length follows"
_MAX_LENGTH_7 = 125
_MAX_LENGTH_16 = 0xFFFF
_PARSE_CODE = Protocol.parse.__code__
_AT_EOF_CODE = StreamReader.at_eof.__code__

DIRECT_RECEIVE_EXTENSION = "voicebot.direct_receive"
"""The scope extension whose value sets (or, with None, unsets) the direct receiver."""

TextReceiver = Callable[[str], bool]


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol (pass it as ``uvicorn.Config(ws=…)``) with a
    fast lane for whole masked text frames in and text frames out; same ASGI messages,
    same bytes on the wire, same errors."""

    _receiver: TextReceiver | None = None
    # The library's parser was seen waiting between frames and has not been fed since:
    # only the library changes its state, so the check need not walk it again per frame.
    _parser_between_frames = False

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][DIRECT_RECEIVE_EXTENSION] = self.set_receiver

    def set_receiver(self, receiver: TextReceiver | None) -> None:
        """Text messages go to ``receiver`` from now on (None: to the queue again); those
        queued already are offered to it first, in order."""
        self._receiver = receiver
        queue = self.queue
        if receiver is None or queue.empty():
            return
        waiting = []
        while not queue.empty():
            waiting.append(queue.get_nowait())
        taken = 0
        for message in waiting:
            text = message.get("text") if message["type"] == "websocket.receive" else None
            if text is None or not self._offer(text):
                break  # this one goes to receive() first, and those behind it too
            taken += 1
        for message in waiting[taken:]:
            queue.put_nowait(message)
        if self.read_paused and queue.empty():
            self.read_paused = False
            self.transport.resume_reading()

    def _deliver(self, text: str) -> bool:
        """``text`` to the direct receiver; False when it is to be queued instead: also
        when a message waits in the queue (one declined, a disconnect), which it must not
        overtake."""
        if not self.queue.empty():
            return False
        return self._offer(text)

    def _offer(self, text: str) -> bool:
        receiver = self._receiver
        if receiver is None or self.close_sent:
            return False
        try:
            return receiver(text)
        except Exception:
            # A receiver must not raise; if it does, the app hears the rest (this message
            # included) through receive(), where its own error handling runs.
            self.logger.exception("websocket receiver failed; back to receive()")
            self._receiver = None
            return False

    def send_receive_event_to_app(self) -> None:
        if self._receiver is None or self.curr_msg_data_type != "text" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            super().send_receive_event_to_app()  # uvicorn closes with 1007
            return
        if self._deliver(text):
            self.frames = []
        else:
            super().send_receive_event_to_app()

    def data_received(self, data: bytes) -> None:
        if not self._fast_receive_ready():
            self._feed_library(data)
            return
        end = len(data)
        pos = 0
        max_size = self.conn.max_message_size
        queue = self.queue
        while pos + 6 <= end:  # the shortest masked frame: 2 header + 4 mask bytes
            if data[pos] != _FIN_TEXT:
                break
            second = data[pos + 1]
            if not second & _MASKED:
                break
            length = second & 0x7F
            if length <= _MAX_LENGTH_7:
                start = pos + 6
            elif length == _LENGTH_16 and pos + 8 <= end:
                length = (data[pos + 2] << 8) | data[pos + 3]
                start = pos + 8
            else:
                break  # a 64-bit length, or a 16-bit one not here yet
            stop = start + length
            if stop > end or (max_size is not None and length > max_size):
                break
            try:
                text = apply_mask(data[start:stop], data[start - 4 : start]).decode()
            except UnicodeDecodeError:
                break  # the library closes with 1007, as uvicorn does
            pos = stop
            if self._receiver is not None and self._deliver(text):
                continue
            queue.put_nowait({"type": "websocket.receive", "text": text})
            if not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
        if pos < end:
            self._feed_library(data[pos:] if pos else data)

    def _feed_library(self, data: bytes) -> None:
        self._parser_between_frames = False
        super().data_received(data)

    def _fast_receive_ready(self) -> bool:
        """The connection is open and the library's parser waits between frames (not
        mid-frame, not mid-message, not closing), so the next byte starts a frame."""
        conn = self.conn
        if (
            not self.handshake_complete
            or self.close_sent
            or self.frames
            or conn.state is not State.OPEN
            or conn.current_size is not None
            or conn.max_fragment_size is not None
            or conn.extensions
            or conn.reader.buffer
        ):
            return False
        # The parser is a chain of generators (the server's handshake parser delegates to
        # the frame parser); between frames its innermost link is the reader's at_eof()
        # called from Protocol.parse(), never Frame.parse() or read_exact().
        if self._parser_between_frames:
            return True
        caller, waiting = None, conn.parser
        while (inner := getattr(waiting, "gi_yieldfrom", None)) is not None:
            caller, waiting = waiting, inner
        self._parser_between_frames = (
            getattr(waiting, "gi_code", None) is _AT_EOF_CODE
            and getattr(caller, "gi_code", None) is _PARSE_CODE
        )
        return self._parser_between_frames

    async def send(self, message: Any) -> None:
        text = message.get("text") if message["type"] == "websocket.send" else None
        conn = self.conn
        if (
            text is None
            or message.get("bytes") is not None
            or not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or conn.state is not State.OPEN
            or conn.expect_continuation_frame
            or conn.extensions
            or conn.writes
        ):
            await super().send(message)
            return
        payload = text.encode()
        length = len(payload)
        if length <= _MAX_LENGTH_7:
            header = bytes((_FIN_TEXT, length))
        elif length <= _MAX_LENGTH_16:
            header = bytes((_FIN_TEXT, _LENGTH_16, length >> 8, length & 0xFF))
        else:
            await super().send(message)
            return
        self.transport.write(header + payload)


WEBSOCKET_SERVER_OPTIONS: dict[str, Any] = {
    "ws": WebSocketProtocol,
    "ws_per_message_deflate": False,
    # Twilio keeps the stream alive itself (50 frames a second); the session's watchdogs
    # end a silent stream, so uvicorn's pings would only add traffic.
    "ws_ping_interval": None,
}
"""The websocket settings every ``uvicorn.Config`` of the app uses (``**`` them in)."""
