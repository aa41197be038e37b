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

A pause inside the utterance (``SpeechPaused``) commits the audio so far at once and
returns its final, for a speculative reply. If the caller resumes, a new item starts with
the whole utterance so far sent again (the recogniser keeps the context of the sentence;
the re-sent audio is the price of the speculation), and the end of the turn commits it.
A pause the turn ends on costs no second commit.
"""

from __future__ import annotations

import asyncio
from collections import deque

from voicebot.audio.codec import FRAME_MS
from voicebot.audio.endpointing import (
    PREROLL_MS,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from voicebot.audio.vad import NOISE_FLOOR_WARMUP_MS
from voicebot.providers.base import Transcript, TranscriptionSession

# μ-law frames remembered before an onset is confirmed: the endpointer's pre-roll plus the
# longest onset confirmation (barge-in) with margin, and at least the floor's warm-up, in
# which an onset at the stream's first frame can be confirmed retroactively.
RING_MS = max(600, NOISE_FLOOR_WARMUP_MS)
# Longest utterance kept for sending again after a pause (30 s of 8 kHz μ-law).
MAX_UTTERANCE_BYTES = 30 * 8000


class LiveRecognition:
    """Feeds one call's transcription session from the inbound frames."""

    __slots__ = ("_feeding", "_last", "_open", "_ring", "_utterance", "session", "utterances")

    def __init__(self, session: TranscriptionSession, *, ring_ms: int = RING_MS) -> None:
        self.session = session
        self._ring: deque[bytes] = deque(maxlen=max(1, ring_ms // FRAME_MS))
        self._open = False
        self._feeding = False  # the open utterance is being streamed (no pause commit since)
        self._utterance = bytearray()  # μ-law of the open utterance, for a resume
        self._last: asyncio.Future[Transcript] | None = None  # the latest pause's commit
        self.utterances = 0

    @property
    def partial_text(self) -> str:
        """What has been heard of the open utterance so far ("" between utterances)."""
        return self.session.partial_text if self._open else ""

    def on_frame(
        self,
        ulaw: bytes,
        event: SpeechStarted | SpeechPaused | SpeechResumed | SpeechEnded | None,
        *,
        stream_ms: int,
    ) -> asyncio.Future[Transcript] | None:
        """Pass one inbound frame (already given to the endpointer, whose decision is
        ``event`` and whose stream time after it is ``stream_ms``); returns the future of
        the utterance's final so far when ``event`` paused it, and of the whole utterance
        when ``event`` ended it."""
        self._ring.append(ulaw)
        if isinstance(event, SpeechStarted):
            self._open = True
            self._last = None
            self._utterance.clear()
            self.utterances += 1
            wanted = (stream_ms - event.onset_ms + PREROLL_MS) // FRAME_MS
            frames = list(self._ring)[-wanted:]
            for frame in frames:
                self._utterance += frame
            self._begin(frames)
            return None
        if not self._open:
            return None
        if len(self._utterance) < MAX_UTTERANCE_BYTES:
            self._utterance += ulaw
        if isinstance(event, SpeechResumed) and not self._feeding:
            self._begin([bytes(self._utterance)])  # all of it again, this frame included
            return None
        if self._feeding:
            self.session.feed(ulaw)
        if isinstance(event, SpeechPaused | SpeechEnded):
            if self._feeding:
                self._last = self.session.commit()
                self._feeding = False
            if isinstance(event, SpeechEnded):
                self._open = False
            return self._last
        return None

    def _begin(self, audio: list[bytes]) -> None:
        self._feeding = True
        if self.session.begin():
            for chunk in audio:
                self.session.feed(chunk)
