"""How Twilio plays the audio a server streams to it, modelled for the caller simulator.

Twilio queues outbound ``media`` and ``mark`` messages in arrival order and plays
the audio in real time. A mark is echoed back once all audio queued before it has
played (at once if nothing is queued or playing); ``clear`` drops the queued
audio and echoes every pending mark immediately. :class:`PlaybackBuffer` does
exactly that, driven by one :meth:`~PlaybackBuffer.tick` per 20 ms frame, and
counts underruns: the buffer running dry while a sentence was playing, that is,
after audio and before the mark that ends it.

Every operation is O(1) per frame (a deque of payloads and mark names).
"""

from __future__ import annotations

from collections import deque

from voicebot.audio.codec import FRAME_BYTES_ULAW, SAMPLE_RATE_HZ

MS_PER_S = 1000


class PlaybackBuffer:
    """Outbound audio and marks waiting to be played to the caller."""

    def __init__(self) -> None:
        self._items: deque[bytes | str] = deque()
        self._head_offset = 0
        self._queued_bytes = 0
        self.playing = False
        """A frame of audio is being played in the current 20 ms tick."""
        self.underruns = 0
        self._in_sentence = False

    @property
    def queued_ms(self) -> float:
        """Audio waiting to be played."""
        return self._queued_bytes / SAMPLE_RATE_HZ * MS_PER_S

    @property
    def busy(self) -> bool:
        """Something is playing or queued (a mark now would not be echoed at once)."""
        return self.playing or bool(self._items)

    def add_audio(self, payload: bytes) -> None:
        """Queue μ-law audio of any length."""
        if payload:
            self._items.append(payload)
            self._queued_bytes += len(payload)

    def add_mark(self, name: str) -> bool:
        """Queue a mark; return True when it is reached at once (nothing queued or playing)."""
        if not self.busy:
            return True
        self._items.append(name)
        return False

    def clear(self) -> list[str]:
        """Drop all queued audio; return the pending marks, which Twilio echoes at once."""
        pending = [item for item in self._items if isinstance(item, str)]
        self._items.clear()
        self._head_offset = 0
        self._queued_bytes = 0
        self._in_sentence = False
        return pending

    def tick(self) -> tuple[bytes, list[str]]:
        """Start the next 20 ms: return the audio now playing and the marks reached first.

        Marks at the head were reached when the previous frame finished; a mark
        that falls inside this frame is reported on the next tick.
        """
        reached: list[str] = []
        items = self._items
        while items and isinstance(name := items[0], str):
            items.popleft()
            reached.append(name)
            self._in_sentence = False
        need = FRAME_BYTES_ULAW
        pieces: list[bytes] = []
        while need and items and isinstance(head := items[0], bytes):
            take = min(need, len(head) - self._head_offset)
            pieces.append(head[self._head_offset : self._head_offset + take])
            need -= take
            self._head_offset += take
            if self._head_offset == len(head):
                items.popleft()
                self._head_offset = 0
        played = FRAME_BYTES_ULAW - need
        self._queued_bytes -= played
        self.playing = played > 0
        if self.playing:
            self._in_sentence = True
        if need and not items and self._in_sentence:
            self.underruns += 1
            self._in_sentence = False
        return b"".join(pieces), reached
