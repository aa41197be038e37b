"""The agent's phrase audio for ``<Play>``: issued as signed URLs, served as μ-law WAV.

Answers to ``<Gather>`` turns synthesize each sentence into the process's phrase cache
before the TwiML goes out, so Twilio's GET that follows is a memory hit. Another web
instance (or one restarted in between) synthesizes it again from the name, which carries
the text under an HMAC.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from voicebot.api.errors import error_response
from voicebot.api.spec import Returns, operation
from voicebot.api.state import app_state
from voicebot.audio.ulaw_wav import ulaw_to_wav
from voicebot.call.services import CallServices
from voicebot.call.speech import synthesize_all
from voicebot.errors import ProviderError
from voicebot.providers.sentences import split_sentences
from voicebot.telephony.audio_token import (
    MAX_TOKEN_CHARS,
    issue_audio_token,
    verify_audio_token,
)
from voicebot.telephony.twiml import Speech

log = structlog.get_logger(__name__)

AUDIO_PATH_PREFIX = "/twilio/audio/"
AUDIO_SUFFIX = ".wav"
SPEECH_PREPARE_TIMEOUT_S = 5.0
"""Bound on synthesizing one answer's sentences before the TwiML goes out; past it the
agent falls back to Twilio's own ``<Say>`` (Twilio drops a webhook after 15 s)."""
AUDIO_SERVE_TIMEOUT_S = 8.0
"""Bound on synthesizing a phrase that is not cached when Twilio fetches it."""
AUDIO_CACHE_CONTROL = "public, max-age=86400, immutable"
"""A name always means the same text, so Twilio may keep the file."""


async def _phrase_audio(services: CallServices, text: str) -> bytes:
    tts = services.tts

    async def factory() -> bytes:
        return await synthesize_all(tts, text)

    return await services.phrases.get(tts.voice_id, text, factory)


async def prepare_speech(services: CallServices, text: str) -> Speech:
    """``text`` as ``<Play>`` URLs (one per sentence, audio already cached), or as ``<Say>``
    text when speech synthesis fails or is too slow."""
    sentences = split_sentences(text)
    if not sentences:
        return Speech(text=text)
    try:
        async with asyncio.timeout(SPEECH_PREPARE_TIMEOUT_S):
            for sentence in sentences:
                await _phrase_audio(services, sentence)
    except (ProviderError, TimeoutError) as exc:
        log.warning("twilio.speech_not_prepared", error=type(exc).__name__)
        return Speech(text=text)
    settings = services.settings
    urls = tuple(
        settings.public_base_url
        + AUDIO_PATH_PREFIX
        + issue_audio_token(settings.stream_secret, sentence)
        + AUDIO_SUFFIX
        for sentence in sentences
    )
    return Speech(text=text, audio_urls=urls)


class AudioPath(BaseModel):
    key: str = Field(
        max_length=MAX_TOKEN_CHARS,
        pattern=r"^[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+$",
        description="a name issued in TwiML (text under an HMAC); any other is a 404",
    )


@operation(
    summary="Phrase audio for <Play> (Twilio)",
    tags=("twilio",),
    path=AudioPath,
    replies=(Returns(200, media_type="audio/wav", description="8 kHz μ-law WAV"),),
    errors=(404, 503),
    public=True,
)
async def audio(request: Request) -> Response:
    """GET one phrase as 8 kHz μ-law WAV; 404 for a name we did not issue."""
    state = app_state(request)
    services: CallServices = state.extras["call_services"]
    text = verify_audio_token(state.settings.verifying_secrets(), request.path_params["key"])
    if text is None:
        return error_response(404, "not_found", "no such phrase")
    try:
        async with asyncio.timeout(AUDIO_SERVE_TIMEOUT_S):
            ulaw = await _phrase_audio(services, text)
    except (ProviderError, TimeoutError) as exc:
        log.warning("twilio.audio_unavailable", error=type(exc).__name__)
        return error_response(503, "unavailable", "speech unavailable")
    return Response(
        ulaw_to_wav(ulaw),
        media_type="audio/wav",
        headers={"Cache-Control": AUDIO_CACHE_CONTROL},
    )


routes: list[Any] = [
    Route(AUDIO_PATH_PREFIX + "{key}" + AUDIO_SUFFIX, audio, methods=["GET"]),
]
