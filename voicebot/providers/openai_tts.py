"""Text-to-speech over OpenAI's ``/audio/speech``, streamed as raw PCM (24 kHz, 16-bit mono LE)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai

from voicebot.config import ProviderEndpoint
from voicebot.errors import ProviderError
from voicebot.providers.budget import Budget
from voicebot.providers.openai_client import CLIENT_ERRORS, make_client, map_error
from voicebot.providers.wav import PCM16_BYTES_PER_SAMPLE

# OpenAI's response_format=pcm is headerless 24 kHz 16-bit signed little-endian mono.
OPENAI_PCM_SAMPLE_RATE_HZ = 24_000
# How long the first audio byte may take; the endpoint timeout bounds the whole stream.
DEFAULT_FIRST_BYTE_TIMEOUT_S = 3.0
MAX_INPUT_CHARS = 4096


class OpenAITextToSpeech:
    """A :class:`~voicebot.providers.base.TextToSpeech` yielding PCM chunks as they arrive."""

    def __init__(
        self,
        endpoint: ProviderEndpoint,
        *,
        voice: str,
        first_byte_timeout_s: float = DEFAULT_FIRST_BYTE_TIMEOUT_S,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._voice = voice
        self._first_byte_timeout_s = first_byte_timeout_s
        self._client = client or make_client(endpoint)

    @property
    def sample_rate_hz(self) -> int:
        return OPENAI_PCM_SAMPLE_RATE_HZ

    @property
    def voice_id(self) -> str:
        return f"openai:{self._endpoint.model}:{self._voice}"

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Stream PCM16 for ``text`` in whole-sample chunks; raises ProviderError types."""
        if not text.strip():
            return
        if len(text) > MAX_INPUT_CHARS:
            raise ProviderError(f"tts input longer than {MAX_INPUT_CHARS} characters")
        budget = Budget(self._endpoint.timeout_s)
        request = self._client.audio.speech.with_streaming_response.create(
            model=self._endpoint.model,
            voice=self._voice,
            input=text,
            response_format="pcm",
        )
        try:
            response = await budget.wait(request.__aenter__(), limit_s=self._first_byte_timeout_s)
        except CLIENT_ERRORS as exc:
            raise map_error("tts", exc, endpoint=self._endpoint) from exc
        try:
            content_type = response.headers.get("content-type", "")
            if not _is_audio(content_type):
                # A gateway's HTML or JSON page with a 200: played as PCM it is noise.
                raise ProviderError(f"tts answered {content_type[:60]!r}, not audio")
            chunks = response.iter_bytes().__aiter__()
            carry = b""
            first = True
            while True:
                try:
                    limit_s = self._first_byte_timeout_s if first else None
                    chunk = await budget.wait(chunks.__anext__(), limit_s=limit_s)
                except StopAsyncIteration:
                    break
                except CLIENT_ERRORS as exc:
                    raise map_error("tts", exc, endpoint=self._endpoint) from exc
                first = first and not chunk
                data = carry + chunk
                whole = len(data) - len(data) % PCM16_BYTES_PER_SAMPLE
                carry = data[whole:]
                if whole:
                    yield data[:whole]
            if first:  # a 200 without a single byte: silence, unless it is an error
                raise ProviderError("tts answered 200 with no audio")
        finally:
            await request.__aexit__(None, None, None)

    async def aclose(self) -> None:
        await self._client.close()


def _is_audio(content_type: str) -> bool:
    """Audio, or an untyped stream (``application/octet-stream``, or no header): the
    ``response_format=pcm`` body; never a text, JSON, HTML or XML page."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return not kind or kind.startswith("audio/") or kind == "application/octet-stream"
