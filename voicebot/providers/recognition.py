"""Adapts a batch :class:`SpeechToText` to the streaming shape the turn loop uses.

:class:`BufferedRecognitionStream` collects an utterance's audio (bounded) and transcribes
it once on :meth:`~BufferedRecognitionStream.finish`; it has no partial hypotheses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from voicebot.errors import InvalidStateError
from voicebot.providers.base import (
    DEFAULT_LANGUAGE,
    RecognitionStream,
    SpeechToText,
    Transcript,
)

# Longest utterance kept for one transcription; later audio is dropped (and counted).
MAX_UTTERANCE_MS = 30_000
PCM16_BYTES_PER_SAMPLE = 2


class BufferedRecognitionStream:
    """A :class:`RecognitionStream` that buffers audio and transcribes it on ``finish``."""

    def __init__(
        self,
        stt: SpeechToText,
        *,
        sample_rate_hz: int,
        language: str = DEFAULT_LANGUAGE,
        max_utterance_ms: int = MAX_UTTERANCE_MS,
    ) -> None:
        self._stt = stt
        self._sample_rate_hz = sample_rate_hz
        self._language = language
        self._max_bytes = sample_rate_hz * PCM16_BYTES_PER_SAMPLE * max_utterance_ms // 1000
        self._buffer = bytearray()
        self._closed = False
        self.dropped_bytes = 0

    @property
    def buffered_ms(self) -> int:
        """Milliseconds of audio held so far."""
        return len(self._buffer) * 1000 // (self._sample_rate_hz * PCM16_BYTES_PER_SAMPLE)

    def push(self, pcm16: bytes) -> None:
        """Append one frame; audio beyond the utterance cap is dropped."""
        if self._closed:
            raise InvalidStateError("recognition stream is closed")
        room = self._max_bytes - len(self._buffer)
        if room >= len(pcm16):
            self._buffer += pcm16
            return
        room -= room % PCM16_BYTES_PER_SAMPLE
        if room > 0:
            self._buffer += pcm16[:room]
        self.dropped_bytes += len(pcm16) - max(room, 0)

    async def partials(self) -> AsyncIterator[str]:
        """A batch recognizer has no interim hypotheses: this yields nothing."""
        return
        yield  # pragma: no cover - makes this an async generator

    async def finish(self) -> Transcript:
        """Transcribe everything pushed so far and close the stream."""
        if self._closed:
            raise InvalidStateError("recognition stream is closed")
        self._closed = True
        audio = bytes(self._buffer)
        self._buffer.clear()
        return await self._stt.transcribe(
            audio, sample_rate_hz=self._sample_rate_hz, language=self._language
        )

    async def aclose(self) -> None:
        """Drop the buffered audio without transcribing it."""
        self._closed = True
        self._buffer.clear()


class BatchRecognizer:
    """A :class:`StreamingSpeechToText` built on a batch :class:`SpeechToText`."""

    def __init__(self, stt: SpeechToText, *, max_utterance_ms: int = MAX_UTTERANCE_MS) -> None:
        self._stt = stt
        self._max_utterance_ms = max_utterance_ms

    def open_stream(
        self, *, sample_rate_hz: int, language: str = DEFAULT_LANGUAGE
    ) -> RecognitionStream:
        return BufferedRecognitionStream(
            self._stt,
            sample_rate_hz=sample_rate_hz,
            language=language,
            max_utterance_ms=self._max_utterance_ms,
        )

    async def aclose(self) -> None:
        await self._stt.aclose()
