"""Streaming recognition of the caller's turns, fed from the receive path frame by frame.

:class:`LiveRecognition` sits beside the endpointer. Every inbound μ-law frame passes
through :meth:`~LiveRecognition.on_frame` with the endpointer's decision for it: at
``SpeechStarted`` an utterance opens on the call's
:class:`~voicebot.providers.base.TranscriptionSession` and receives the audio the
endpointer keeps for it (the pre-roll and the onset, held here in a short ring, so the
recognizer hears the first phoneme); every frame of the utterance follows as it arrives
(Twilio's μ-law bytes as they came: no transcoding); at ``SpeechEnded`` the utterance is
committed and the future of its final transcript returned, to travel with the utterance
to the turn loop. :attr:`~LiveRecognition.partial_text` is what has been heard of the
open utterance so far (for endpointing decisions).

When the session is down at the onset, the utterance is not streamed and its future
fails at once: the turn loop then transcribes the endpointer's audio with batch STT.
"""

from __future__ import annotations

import asyncio
from collections import deque

from voicebot.audio.codec import FRAME_MS
from voicebot.audio.endpointing import PREROLL_MS, SpeechEnded, SpeechStarted
from voicebot.providers.base import Transcript, TranscriptionSession

# μ-law frames remembered before an onset is confirmed: the endpointer's pre-roll plus the
# longest onset confirmation (barge-in) with margin.
RING_MS = 600


class LiveRecognition:
    """Feeds one call's transcription session from the inbound frames."""

    __slots__ = ("_open", "_ring", "session", "utterances")

    def __init__(self, session: TranscriptionSession, *, ring_ms: int = RING_MS) -> None:
        self.session = session
        self._ring: deque[bytes] = deque(maxlen=max(1, ring_ms // FRAME_MS))
        self._open = False
        self.utterances = 0

    @property
    def partial_text(self) -> str:
        """What has been heard of the open utterance so far ("" between utterances)."""
        return self.session.partial_text if self._open else ""

    def on_frame(
        self,
        ulaw: bytes,
        event: SpeechStarted | SpeechEnded | None,
        *,
        stream_ms: int,
    ) -> asyncio.Future[Transcript] | None:
        """Pass one inbound frame (already given to the endpointer, whose decision is
        ``event`` and whose stream time after it is ``stream_ms``); returns the final
        transcript's future when ``event`` ended an utterance."""
        self._ring.append(ulaw)
        if isinstance(event, SpeechStarted):
            self._open = True
            self.utterances += 1
            if self.session.begin():
                wanted = (stream_ms - event.onset_ms + PREROLL_MS) // FRAME_MS
                for frame in list(self._ring)[-wanted:]:
                    self.session.feed(frame)
            return None
        if not self._open:
            return None
        self.session.feed(ulaw)
        if isinstance(event, SpeechEnded):
            self._open = False
            return self.session.commit()
        return None
