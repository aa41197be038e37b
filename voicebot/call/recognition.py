"""The caller's words for one finished utterance: the streamed final, else batch STT.

:class:`Recognition` is the turn loop's recogniser glue. With a streaming recognizer
(``STT_MODE=streaming``, :mod:`voicebot.call.live_stt`) each utterance travels with the
future of its final transcript; :meth:`Recognition.streamed_text` awaits it and returns
None when the utterance was not streamed or streaming failed (error, closed socket, no
final in time), and :meth:`Recognition.recognize` then transcribes the utterance's audio
in one batch request. Every transcript passes through :func:`caller_words` before the
brain, the model or the stored turn reads it; carried words join the next utterance's
through :func:`joined_words`.

Failure: a streaming error is counted and logged once and answered by batch STT; a batch
error is raised (:class:`~voicebot.errors.ProviderError`) for the turn loop to apologise.
"""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Any

from voicebot.call.services import CallServices
from voicebot.errors import ProviderError
from voicebot.providers.base import Transcript

INBOUND_RATE_HZ = 8000  # Twilio Media Streams audio: 8 kHz mu-law
LANGUAGE = "he"
# The longest caller turn the brain reads: 30 s of fast speech is ~600 characters. A
# recogniser looping on a word can return 50 KB, whose intent matching alone held the
# event loop (every call of the process) for seconds.
MAX_CALLER_TEXT_CHARS = 1000


class Recognition:
    """Recognition of one call's utterances (stateless apart from its log context)."""

    def __init__(self, services: CallServices, log: Any) -> None:
        self._services = services
        self._log = log

    @staticmethod
    def words(text: str) -> str:
        """:func:`caller_words`, for the call's collaborators."""
        return caller_words(text)

    async def streamed_text(self, transcript: asyncio.Future[Transcript] | None) -> str | None:
        """The streaming recognizer's final (``transcript``, the utterance's); None when it
        was not streamed or streaming failed (batch STT then transcribes the audio)."""
        if transcript is None:
            return None
        try:
            final = await transcript
        except ProviderError as exc:
            self._services.metrics.provider_errors.labels("stt_stream", exc.code).inc()
            self._log.warning("call.stt_stream_failed", error=exc.message)
            return None
        return caller_words(final.text)

    async def utterance_text(
        self, transcript: asyncio.Future[Transcript] | None, audio: bytes
    ) -> str:
        """The streamed final (:meth:`streamed_text`), else batch STT of ``audio``
        (:meth:`recognize`); raises ProviderError when batch STT fails."""
        streamed = await self.streamed_text(transcript)
        return streamed if streamed is not None else await self.recognize(audio)

    async def recognize(self, audio: bytes) -> str:
        """The utterance's words (``audio``: 8 kHz PCM16; "" without a recognizer); raises
        ProviderError."""
        recognizer = self._services.recognizer
        if recognizer is None:
            return ""
        # The turn loop speaks only the streaming shape, so a recognizer with partial
        # transcripts plugs in here unchanged.
        stream = recognizer.open_stream(sample_rate_hz=INBOUND_RATE_HZ, language=LANGUAGE)
        try:
            stream.push(audio)
            transcript = await stream.finish()
        finally:
            await stream.aclose()
        return caller_words(transcript.text)


def caller_words(text: str) -> str:
    """A transcript as the brain, the model and the stored turn may read it: control,
    format (bidi, zero-width) and other non-printing characters become spaces, runs of
    space one, and the text is cut to :data:`MAX_CALLER_TEXT_CHARS` at a word."""
    head = text[: MAX_CALLER_TEXT_CHARS * 2]
    printable = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in head)
    words = " ".join(printable.split())
    if len(words) <= MAX_CALLER_TEXT_CHARS:
        return words
    cut = words[: MAX_CALLER_TEXT_CHARS + 1]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut[:MAX_CALLER_TEXT_CHARS]


def joined_words(carried: str, text: str) -> str:
    """Carried caller words (a reply to them was dropped unplayed) joined to the next
    utterance's, cut like one turn to :data:`MAX_CALLER_TEXT_CHARS` at a word, keeping the
    newest words: a caller who never lets the agent in is answered on what they said last."""
    words = f"{carried} {text}".strip()
    if len(words) <= MAX_CALLER_TEXT_CHARS:
        return words
    tail = words[-MAX_CALLER_TEXT_CHARS - 1 :]
    return tail.split(" ", 1)[1] if " " in tail else tail[-MAX_CALLER_TEXT_CHARS:]
