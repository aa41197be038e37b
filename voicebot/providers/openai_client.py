"""The OpenAI client shared by the OpenAI STT, LLM and TTS providers, and its error mapping.

One :class:`openai.AsyncOpenAI` per stage endpoint, with retries off (the call pipeline
decides on retries, under its own deadline). Every OpenAI failure leaves this package as a
:class:`~voicebot.errors.ProviderError` or :class:`~voicebot.errors.ProviderTimeoutError`
whose message names the stage and status but never the key.
"""

from __future__ import annotations

import json

import httpx
import httpx2
import openai

from voicebot.config import ProviderEndpoint
from voicebot.errors import ProviderError, ProviderTimeoutError

# Longest provider error message carried into our own errors and logs.
MAX_ERROR_MESSAGE_CHARS = 200


class OneWriteTransport(httpx2.AsyncBaseTransport):
    """Sends each request body in one socket write instead of one per piece.

    The SDK streams a multipart upload (the STT WAV) as ~16 pieces (boundaries, part
    headers, data), and the transport yields to the event loop before every write. On a
    busy call server each yield waits a whole loop iteration behind every call's media
    frames, so one 50 KB upload took 17 iterations; at 100 calls on a loaded machine that
    was longer than the STT timeout, and the provider saw the client give up mid-body.
    Joining the pieces first (they are in memory already) makes an upload cost two writes,
    headers and body, as a JSON request does.
    """

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport(limits=openai.DEFAULT_CONNECTION_LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()  # no I/O: joins the in-memory pieces into one buffer
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def make_client(endpoint: ProviderEndpoint) -> openai.AsyncOpenAI:
    """Build a client for one stage; it connects lazily, on the first request."""
    return openai.AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key.get_secret_value(),
        timeout=endpoint.timeout_s,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(transport=OneWriteTransport()),
    )


def map_error(stage: str, exc: BaseException, *, endpoint: ProviderEndpoint) -> ProviderError:
    """Translate an OpenAI client exception into the voicebot error tree."""
    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return ProviderTimeoutError(f"{stage} provider timed out", details={"stage": stage})
    if isinstance(exc, openai.APIStatusError):
        message = _scrub(str(exc.message), endpoint)
        return ProviderError(
            f"{stage} provider returned HTTP {exc.status_code}: {message}",
            details={"stage": stage, "status": exc.status_code, "code": exc.code},
        )
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(f"{stage} provider unreachable", details={"stage": stage})
    if isinstance(exc, httpx.TimeoutException | httpx2.TimeoutException):
        return ProviderTimeoutError(f"{stage} provider timed out", details={"stage": stage})
    if isinstance(exc, httpx.HTTPError | httpx2.HTTPError):
        # A stream cut mid-body surfaces from the body iterator as the transport's own
        # error (RemoteProtocolError, ReadError), which the SDK does not wrap; the SDK
        # rides on httpx2, our other clients on httpx.
        return ProviderError(
            f"{stage} provider stream broke: {type(exc).__name__}",
            details={"stage": stage, "error": type(exc).__name__},
        )
    if isinstance(exc, json.JSONDecodeError | openai.APIError):
        return ProviderError(
            f"{stage} provider sent a malformed response", details={"stage": stage}
        )
    return ProviderError(f"{stage} provider failed: {type(exc).__name__}", details={"stage": stage})


# Exceptions an OpenAI call can raise that map_error understands: the whole kind, so a
# broken stream (httpx.RemoteProtocolError while reading the body) is a ProviderError too.
CLIENT_ERRORS: tuple[type[Exception], ...] = (
    TimeoutError,
    openai.OpenAIError,
    httpx.HTTPError,
    httpx2.HTTPError,
    json.JSONDecodeError,
)


def _scrub(message: str, endpoint: ProviderEndpoint) -> str:
    secret = endpoint.api_key.get_secret_value()
    if secret and len(secret) > 3:
        message = message.replace(secret, "***")
    return message[:MAX_ERROR_MESSAGE_CHARS]
