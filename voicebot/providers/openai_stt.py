"""Speech-to-text over OpenAI's ``/audio/transcriptions`` (or any compatible Whisper server)."""

from __future__ import annotations

import asyncio

import openai

from voicebot.config import ProviderEndpoint
from voicebot.providers.base import DEFAULT_LANGUAGE, Transcript
from voicebot.providers.openai_client import CLIENT_ERRORS, make_client, map_error
from voicebot.providers.wav import PCM16_BYTES_PER_SAMPLE, pcm16_to_wav

UPLOAD_FILENAME = "utterance.wav"
UPLOAD_CONTENT_TYPE = "audio/wav"


class OpenAISpeechToText:
    """A :class:`~voicebot.providers.base.SpeechToText` that uploads each utterance as WAV."""

    def __init__(
        self, endpoint: ProviderEndpoint, *, client: openai.AsyncOpenAI | None = None
    ) -> None:
        self._endpoint = endpoint
        self._client = client or make_client(endpoint)

    async def transcribe(
        self, pcm16: bytes, *, sample_rate_hz: int, language: str = DEFAULT_LANGUAGE
    ) -> Transcript:
        """Transcribe one utterance; raises ProviderError or ProviderTimeoutError."""
        duration_ms = len(pcm16) // PCM16_BYTES_PER_SAMPLE * 1000 // sample_rate_hz
        if not pcm16:
            return Transcript(text="", language=language, duration_ms=0)
        wav = pcm16_to_wav(pcm16, sample_rate_hz=sample_rate_hz)
        try:
            async with asyncio.timeout(self._endpoint.timeout_s):
                result = await self._client.audio.transcriptions.create(
                    model=self._endpoint.model,
                    file=(UPLOAD_FILENAME, wav, UPLOAD_CONTENT_TYPE),
                    language=language,
                )
        except CLIENT_ERRORS as exc:
            raise map_error("stt", exc, endpoint=self._endpoint) from exc
        return Transcript(text=result.text.strip(), language=language, duration_ms=duration_ms)

    async def aclose(self) -> None:
        await self._client.close()
