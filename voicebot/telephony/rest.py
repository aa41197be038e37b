"""Placing, ending and transferring calls through Twilio's REST API.

:class:`TwilioDialer` wraps the official (synchronous) ``twilio`` client: each
request runs in a worker thread, at most ``max_concurrent_requests`` at a time,
bounded by a timeout, and transient failures are retried with jittered backoff.
``settings.twilio_api_base_url`` points the client at another host (the REST
simulator in tests and the demo) by replacing the ``api`` domain's base URL.

Retries are chosen per request: updating a call is idempotent, so any 429,
5xx, connection error or timeout is retried; creating one is not, so only
answers that mean "not processed" (429, 503, connection refused) are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import requests
import urllib3
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from voicebot.config import Settings
from voicebot.errors import ConfigError, TelephonyError
from voicebot.telephony import twiml

DEFAULT_MAX_CONCURRENT_REQUESTS = 8
"""Requests in flight at once (each holds a worker thread)."""
DEFAULT_REQUEST_TIMEOUT_S = 10.0
"""Per-attempt bound on one REST request, enforced both by the HTTP client and asyncio."""
DEFAULT_MAX_ATTEMPTS = 3
THREAD_TIMEOUT_GRACE_S = 1.0
"""Extra time the asyncio bound allows, so the HTTP client's own timeout normally fires first."""
RETRY_INITIAL_WAIT_S = 0.25
RETRY_MAX_WAIT_S = 2.0
RETRY_JITTER_S = 0.25
STATUS_CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
MACHINE_DETECTION_MODE = "Enable"
"""Report human/machine as soon as known."""
MACHINE_DETECTION_MESSAGE_END = "DetectMessageEnd"
"""For a machine, wait for the end of its greeting (the beep) so a message can be left."""

HTTP_NOT_FOUND = 404
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVICE_UNAVAILABLE = 503
HTTP_SERVER_ERROR_MIN = 500
HTTP_AUTH_STATUSES = frozenset({401, 403})
TWILIO_CODE_NOT_FOUND = 20404
TWILIO_CODE_CALL_NOT_IN_PROGRESS = 21220
"""Twilio's answer to updating a call that is no longer in progress."""

LIST_SLACK = timedelta(seconds=5)
"""Clock skew allowed between us and Twilio when matching a call to an attempt."""
LIST_LIMIT = 20

T = TypeVar("T")

_REST_LOG = logging.getLogger("voicebot.twilio_rest")
# The twilio client logs every request and response at INFO; a dialer places thousands.
_REST_LOG.setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What Twilio's REST API says about one call."""

    sid: str
    status: str
    to: str | None
    created_at: datetime | None
    duration_s: int | None
    answered_by: str | None


def _record(call: Any) -> CallRecord:
    created = getattr(call, "date_created", None)
    duration = getattr(call, "duration", None)
    return CallRecord(
        sid=str(call.sid),
        status=str(call.status),
        to=getattr(call, "to", None),
        created_at=created if isinstance(created, datetime) else None,
        duration_s=int(duration) if isinstance(duration, str) and duration.isdigit() else None,
        answered_by=getattr(call, "answered_by", None),
    )


class TelephonyAuthError(TelephonyError):
    """Twilio refused our credentials; retrying cannot help."""

    retryable = False
    code = "telephony_auth_error"


class CallNotInProgressError(TelephonyError):
    """The call has already ended, so it cannot be redirected."""

    retryable = False
    code = "call_not_in_progress"


class TwilioDialer:
    """Async facade over the Twilio Calls resource for one account."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base_url: str | None = None,
        max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self._account_sid = account_sid
        self._request_timeout_s = request_timeout_s
        self._max_attempts = max_attempts
        self._semaphore = asyncio.Semaphore(max_concurrent_requests)
        self._http = TwilioHttpClient(timeout=request_timeout_s, logger=_REST_LOG)
        self._client = Client(
            username=account_sid,
            password=auth_token,
            account_sid=account_sid,
            http_client=self._http,
        )
        if api_base_url:
            self._client.api.base_url = api_base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioDialer:
        """Build the dialer from TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_API_BASE_URL."""
        token = settings.twilio_auth_token
        if not settings.twilio_account_sid or token is None or not token.get_secret_value():
            raise ConfigError(
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required to place calls"
            )
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=token.get_secret_value(),
            api_base_url=settings.twilio_api_base_url,
            request_timeout_s=settings.twilio_request_timeout_s,
        )

    @property
    def api_base_url(self) -> str:
        """Where REST requests go (``https://api.twilio.com`` unless overridden)."""
        base: str = self._client.api.base_url
        return base

    def close(self) -> None:
        """Release the pooled HTTP connections."""
        if self._http.session is not None:
            self._http.session.close()

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        machine_detection: bool = False,
        async_amd_callback: str | None = None,
        wait_for_message_end: bool = False,
        before_send: Callable[[], object] | None = None,
    ) -> str:
        """Place an outbound call whose voice webhook is ``url``; return its ``CA…`` SID.

        ``before_send`` runs in the request's thread just before each send (the campaign
        engine's pacing gate); what it raises ends the call attempt unsent.

        With ``machine_detection`` the webhook (or ``async_amd_callback``) gets
        ``AnsweredBy``; ``wait_for_message_end`` delays a machine's answer to after its
        beep, so the webhook can leave a voicemail message.
        """
        kwargs: dict[str, Any] = {
            "to": to,
            "from_": from_,
            "url": url,
            "method": "POST",
            "status_callback": status_callback,
            "status_callback_event": list(STATUS_CALLBACK_EVENTS),
            "status_callback_method": "POST",
        }
        if machine_detection:
            kwargs["machine_detection"] = (
                MACHINE_DETECTION_MESSAGE_END if wait_for_message_end else MACHINE_DETECTION_MODE
            )
            if async_amd_callback:
                kwargs["async_amd"] = "true"
                kwargs["async_amd_status_callback"] = async_amd_callback
                kwargs["async_amd_status_callback_method"] = "POST"

        def create() -> str:
            if before_send is not None:
                before_send()
            sid: str = self._client.calls.create(**kwargs).sid
            return sid

        return await self._run("create_call", create, retry_on=_create_is_retryable)

    async def hangup(self, call_sid: str) -> None:
        """End a call (``Status=completed``); a call that already ended counts as success."""

        def update() -> None:
            self._client.calls(call_sid).update(status="completed")

        try:
            await self._run("hangup", update, retry_on=_update_is_retryable)
        except CallNotInProgressError:
            return
        except TelephonyError as exc:
            if isinstance(exc.__cause__, TwilioException) and _is_not_found(exc.__cause__):
                return
            raise

    async def fetch_call(self, call_sid: str) -> CallRecord | None:
        """Twilio's record of one call, or None when Twilio does not know the SID."""

        def fetch() -> CallRecord:
            return _record(self._client.calls(call_sid).fetch())

        try:
            return await self._run("fetch_call", fetch, retry_on=_update_is_retryable)
        except TelephonyError as exc:
            if isinstance(exc.__cause__, TwilioException) and _is_not_found(exc.__cause__):
                return None
            raise

    async def find_calls(self, *, to: str, created_after: datetime) -> list[CallRecord]:
        """Calls to ``to`` created at or after ``created_after`` (Twilio's ``calls.list``,
        filtered by start date on Twilio's side and by creation time here)."""

        def listing() -> list[CallRecord]:
            found = self._client.calls.list(
                to=to, start_time_after=created_after - LIST_SLACK, limit=LIST_LIMIT
            )
            return [_record(call) for call in found]

        records = await self._run("list_calls", listing, retry_on=_update_is_retryable)
        return [
            r for r in records if r.created_at is None or r.created_at >= created_after - LIST_SLACK
        ]

    async def send_sms(
        self, *, to: str, from_: str, body: str, status_callback: str
    ) -> tuple[str, str]:
        """Send one SMS (``messages.create``); returns its ``SM…`` SID and Twilio's first
        status. Retried only when Twilio certainly did not take it (as a call create)."""

        def create() -> tuple[str, str]:
            message = self._client.messages.create(
                to=to, from_=from_, body=body, status_callback=status_callback
            )
            return str(message.sid), str(message.status or "queued")

        return await self._run("send_sms", create, retry_on=_create_is_retryable)

    async def play_then_hang_up(self, call_sid: str, document: str) -> None:
        """Replace the live call's TwiML with ``document`` (a voicemail message then
        ``<Hangup/>``); its Media Stream stops. A call that already ended counts as done."""

        def update() -> None:
            self._client.calls(call_sid).update(twiml=document)

        try:
            await self._run("play_then_hang_up", update, retry_on=_update_is_retryable)
        except CallNotInProgressError:
            return

    async def redirect_to_dial(self, call_sid: str, number: str) -> None:
        """Replace the live call's TwiML with ``<Dial>number</Dial>`` (transfer to a human)."""
        document = twiml.dial(number)

        def update() -> None:
            self._client.calls(call_sid).update(twiml=document)

        await self._run("redirect_to_dial", update, retry_on=_update_is_retryable)

    async def _run(
        self, operation: str, func: Callable[[], T], *, retry_on: Callable[[BaseException], bool]
    ) -> T:
        """Run ``func`` in a thread with the concurrency bound, timeout and retry policy."""
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(retry_on),
                stop=stop_after_attempt(self._max_attempts),
                wait=wait_exponential(multiplier=RETRY_INITIAL_WAIT_S, max=RETRY_MAX_WAIT_S)
                + wait_random(0, RETRY_JITTER_S),
                reraise=True,
            ):
                with attempt:
                    async with self._semaphore:
                        return await asyncio.wait_for(
                            asyncio.to_thread(func),
                            timeout=self._request_timeout_s + THREAD_TIMEOUT_GRACE_S,
                        )
        except TwilioException as exc:
            raise _translate(operation, exc) from exc
        except TimeoutError as exc:
            raise TelephonyError(
                f"Twilio {operation} timed out after {self._request_timeout_s}s"
            ) from exc
        except requests.RequestException as exc:
            raise TelephonyError(f"Twilio {operation} failed: {type(exc).__name__}") from exc
        raise AssertionError("unreachable: tenacity re-raises or returns")  # pragma: no cover


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _twilio_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _is_not_found(exc: BaseException) -> bool:
    return _status(exc) == HTTP_NOT_FOUND or _twilio_code(exc) == TWILIO_CODE_NOT_FOUND


def _create_is_retryable(exc: BaseException) -> bool:
    """Creating a call is retried only when Twilio certainly did not create it."""
    if isinstance(exc, TwilioException):
        return _status(exc) in (HTTP_TOO_MANY_REQUESTS, HTTP_SERVICE_UNAVAILABLE)
    # A refused or timed-out connect never reached Twilio; a read timeout may have, and so
    # may a connection dropped after the request went out.
    return (
        isinstance(exc, requests.ConnectionError)
        and not isinstance(exc, requests.ReadTimeout)
        and not sent_before_failing(exc)
    )


def sent_before_failing(exc: requests.ConnectionError) -> bool:
    """True when the connection broke after the request was sent (reset or closed before
    the answer: urllib3's ``ProtocolError``), so Twilio may have acted on it; False for a
    connection that was never made (refused, DNS, connect timeout)."""
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, urllib3.exceptions.ProtocolError)


def _update_is_retryable(exc: BaseException) -> bool:
    """Updates are idempotent: retry throttling, server errors, network errors and timeouts."""
    if isinstance(exc, TwilioException):
        status = _status(exc)
        return status is not None and (
            status == HTTP_TOO_MANY_REQUESTS or status >= HTTP_SERVER_ERROR_MIN
        )
    return isinstance(exc, requests.RequestException | TimeoutError)


def _translate(operation: str, exc: TwilioException) -> TelephonyError:
    status, code = _status(exc), _twilio_code(exc)
    message = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
    details = {"status": status, "twilio_code": code}
    text = f"Twilio {operation} failed: HTTP {status}, code {code}: {message}"
    if status in HTTP_AUTH_STATUSES:
        return TelephonyAuthError(text, details=details)
    if code == TWILIO_CODE_CALL_NOT_IN_PROGRESS:
        return CallNotInProgressError(text, details=details)
    return TelephonyError(text, details=details)
