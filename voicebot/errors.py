"""The one error tree of voicebot.

Every error the product raises on purpose derives from :class:`VoicebotError`.
Each class says whether retrying the same operation can succeed (``retryable``),
so the Dramatiq actors and the provider wrappers decide on the type alone, and
the API edge maps each type to one HTTP status.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VoicebotError(Exception):
    """Root of every voicebot error."""

    retryable: ClassVar[bool] = False
    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(VoicebotError):
    """A setting is missing or invalid; raised at start-up."""

    code = "config_error"


class NotFoundError(VoicebotError):
    """An id names no stored object."""

    http_status = 404
    code = "not_found"


class ConflictError(VoicebotError):
    """The request contradicts stored state (duplicate phone, overlapping meeting)."""

    http_status = 409
    code = "conflict"


class InvalidInputError(VoicebotError):
    """Input failed validation; ``details`` lists the fields at fault."""

    http_status = 422
    code = "validation_error"


class InvalidStateError(ConflictError):
    """An action is not allowed in the object's current state (start a cancelled campaign)."""

    code = "invalid_state"


class AuthError(VoicebotError):
    """Missing or wrong credentials."""

    http_status = 401
    code = "unauthorized"


class SignatureError(VoicebotError):
    """A Twilio request or stream handshake failed signature or token checks."""

    http_status = 403
    code = "forbidden"


class RateLimitedError(VoicebotError):
    """Too many requests from one key or address."""

    retryable = True
    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PayloadTooLargeError(VoicebotError):
    """A request body exceeded the configured cap."""

    http_status = 413
    code = "payload_too_large"


class ProviderError(VoicebotError):
    """An STT, LLM or TTS backend failed; another try may succeed."""

    retryable = True
    http_status = 502
    code = "provider_error"


class ProviderTimeoutError(ProviderError):
    """A provider did not answer within its timeout."""

    code = "provider_timeout"


class VoiceUnavailableError(VoicebotError):
    """No voice can speak: the TTS provider failed, there is no fallback voice (espeak-ng
    not installed, or failing too) and no stand-in phrase is cached. A call in this state
    would be silent: it ends at once and the lead is called again later."""

    retryable = True
    http_status = 503
    code = "tts_unavailable"


class TelephonyError(VoicebotError):
    """The Twilio REST API refused or failed an operation."""

    retryable = True
    http_status = 502
    code = "telephony_error"


class PeerStalledError(VoicebotError):
    """The caller's websocket stopped taking data: a send did not finish in time."""

    retryable = False
    http_status = 504
    code = "peer_stalled"


class PeerGoneError(VoicebotError):
    """The caller's websocket is closed: a send found the peer gone (a hang-up or a lost
    connection the receive side had not seen yet). The peer going away is no fault of
    ours: the call ends quietly."""

    retryable = False
    http_status = 499
    code = "peer_gone"


class StateStoreError(VoicebotError):
    """The turn-state store (Redis) is unreachable."""

    retryable = True
    http_status = 503
    code = "state_store_unavailable"


class BrokerUnavailableError(VoicebotError):
    """The job broker's server (Redis or RabbitMQ) did not answer in time."""

    retryable = True
    http_status = 503
    code = "broker_unavailable"


class StorageError(VoicebotError):
    """The recording store (a directory or an S3 bucket) refused or failed an operation."""

    retryable = True
    http_status = 503
    code = "storage_unavailable"


class OutboxUnavailableError(VoicebotError):
    """The opt-out outbox (Redis, or the full in-process queue) could not be used."""

    retryable = True
    http_status = 503
    code = "optout_outbox_unavailable"
