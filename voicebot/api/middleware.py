"""Pure-ASGI middleware: request context + access log + metrics, body cap, API key, rate limit."""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Mapping
from urllib.parse import unquote_plus

import structlog
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebot.api.errors import error_response
from voicebot.api.rate_limits import RateLimits, per_minute
from voicebot.config import Settings
from voicebot.metrics import Metrics

log = structlog.get_logger(__name__)
MAX_REQUEST_ID_CHARS = 128
MAX_LOGGED_QUERY_CHARS = 512
_REQUEST_ID_RE = re.compile(r"[\x21-\x7e]+")


class RequestContextMiddleware:
    """Binds a request id to every log line, logs one access event, records route metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = _request_id(headers.get("x-request-id"))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.http_latency.labels(route, scope["method"]).observe(elapsed)
            if not route.startswith(("/health", "/metrics")):
                log.info(
                    "http.request",
                    method=scope["method"],
                    path=scope["path"],
                    query=_logged_query(scope),
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.clear_contextvars()


def _request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is a short printable token, else a fresh one
    (every log line carries it: it must not smuggle a payload into the logs)."""
    if given and len(given) <= MAX_REQUEST_ID_CHARS and _REQUEST_ID_RE.fullmatch(given):
        return given
    return uuid.uuid4().hex[:16]


class ErrorBoundaryMiddleware:
    """Turns an unexpected exception into the one 500 error shape and logs it once.

    Starlette's own catch-all answers 500 and then re-raises so the server logs the
    traceback a second time; this boundary sits inside the request context and does not
    re-raise. When the response had already started, it ends the body instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except ClientDisconnect:
            # The client closed the connection before its whole body arrived: nobody to
            # answer, nothing of ours failed. The 400 only reaches the access log and metrics.
            log.info("http.client_disconnected")
            if not started:
                response = error_response(400, "client_disconnected", "request body incomplete")
                await response(scope, receive, send)
        except Exception as exc:
            log.exception("api.unhandled_error", error_type=type(exc).__name__)
            if started:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            response = error_response(500, "internal_error", "internal server error")
            await response(scope, receive, send)


def _logged_query(scope: Scope) -> str:
    """The query string decoded once (``%2B972…`` → ``+972…``) so the log masking sees
    phone numbers the way the route does; cut to ``MAX_LOGGED_QUERY_CHARS``."""
    raw = scope.get("query_string", b"")[: MAX_LOGGED_QUERY_CHARS * 3]
    return unquote_plus(raw.decode("ascii", "replace"), errors="replace")[:MAX_LOGGED_QUERY_CHARS]


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path: str | None = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    return str(scope.get("root_path", "")) + path


class BodyLimitMiddleware:
    """Refuses bodies over ``max_body_bytes`` with 413, by header or while streaming;
    ``path_limits`` gives single paths (a file upload) their own limit, ``suffix_limits``
    the paths that end a certain way (a file upload under an id)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        suffix_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.path_limits = dict(path_limits or {})
        self.suffix_limits = dict(suffix_limits or {})

    def _limit(self, path: str) -> int:
        if path in self.path_limits:
            return self.path_limits[path]
        for suffix, limit in self.suffix_limits.items():
            if path.endswith(suffix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._reject(scope, receive, send, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(413, "payload_too_large", f"request body over {limit} bytes")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class ApiGuardMiddleware:
    """On /api: the API key (constant-time) when configured, then per-key and per-address
    request limits. Failed authentications are limited per address on their own
    (``AUTH_FAILURES_PER_MINUTE``): past it the address gets 429 with ``Retry-After``
    before its key is even compared, so guessing cannot go on at the request rate."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, metrics: Metrics, limits: RateLimits
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.limits = limits
        self.expected = (
            settings.api_key.get_secret_value().encode() if settings.api_key is not None else None
        )
        self.requests = per_minute(settings.rate_limit_per_minute)
        self.auth_failures = per_minute(settings.auth_failures_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        presented = _presented_key(Headers(scope=scope))
        if self.expected is not None:
            retry_after = await self.limits.blocked(self.auth_failures, "authfail", address)
            if retry_after is not None:
                await self._too_many(scope, receive, send, retry_after)
                return
            if presented is None or not hmac.compare_digest(presented.encode(), self.expected):
                await self.limits.hit(self.auth_failures, "authfail", address)
                log.info("api.auth_failed", client=address, key_given=presented is not None)
                response = error_response(401, "unauthorized", "missing or invalid API key")
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        counted = [("addr", address)]
        if presented:
            counted.append(("key", hmac.new(b"rl", presented.encode(), "sha256").hexdigest()[:16]))
        for kind, identifier in counted:
            retry_after = await self.limits.hit(self.requests, kind, identifier)
            if retry_after is not None:
                await self._too_many(scope, receive, send, retry_after)
                return
        await self.app(scope, receive, send)

    async def _too_many(self, scope: Scope, receive: Receive, send: Send, retry_s: int) -> None:
        self.metrics.rate_limited.inc()
        response = error_response(429, "rate_limited", "too many requests")
        response.headers["Retry-After"] = str(retry_s)
        await response(scope, receive, send)


def _presented_key(headers: Headers) -> str | None:
    """The key the client presented (Bearer or X-API-Key); an empty one counts as none."""
    auth = headers.get("authorization")
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return (headers.get("x-api-key") or "").strip() or None
