"""Who may use the console, and proof that a form came from it.

Owns :class:`ConsoleGuard`, pure-ASGI middleware inside Starlette's signed session
(itsdangerous, HttpOnly, SameSite=strict, ``Secure`` on an https deployment) that:

- lets ``/ui/sign-in`` and ``/ui/static/…`` through; every other page needs a session
  signed in with the current ``API_KEY`` (the session holds an HMAC fingerprint of the
  key, so changing the key signs everyone out) or, when no key is set, no sign-in at all;
  a page without one is redirected to sign-in (an htmx request gets ``HX-Redirect``);
  signing out revokes the session's id (in Redis, else in this process) until the cookie
  would have expired, so a copy of the cookie taken before sign-out no longer works;
- refuses (403) any unsafe request whose CSRF token, from the ``X-CSRF-Token`` header
  (htmx sends it on every request) or the ``csrf_token`` form field, does not equal the
  session's (the synchronizer-token pattern: the token lives in the signed session);
- adds to every answer the headers that keep the console out of other sites' frames
  (``X-Frame-Options``, CSP ``frame-ancestors``), limit scripts to our own files, and,
  outside ``/ui/static/``, keep pages out of browser and proxy caches (``no-store``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import quote

import structlog
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebot.api.state import app_state
from voicebot.config import Settings

log = structlog.get_logger(__name__)

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_AUTH_KEY = "auth"
SESSION_CSRF_KEY = "csrf"
SESSION_ID_KEY = "sid"
SESSION_MAX_AGE_S = 12 * 3600
REVOKED_KEY_PREFIX = "voicebot:console:signed-out:"
PROCESS_SECRET = secrets.token_hex(32)
"""Stands in for ``SECRET_KEY`` when none is set (a loopback development server)."""
CSRF_TOKEN_BYTES = 32
CONSOLE_PREFIX = "/ui"
OPEN_PREFIXES = ("/ui/sign-in", "/ui/static/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
STATIC_PREFIX = "/ui/static/"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")


def key_fingerprint(settings: Settings) -> str | None:
    """What a signed-in session holds: an HMAC of the API key (None when no key is set)."""
    if settings.api_key is None:
        return None
    # Keyed with the server's secret: the signed cookie is readable by whoever holds it,
    # and an unkeyed hash of the API key would let them guess the key offline.
    secret = settings.secret_key.get_secret_value() if settings.secret_key else PROCESS_SECRET
    key = b"voicebot-console:" + secret.encode()
    digest = hmac.new(key, settings.api_key.get_secret_value().encode(), "sha256")
    return digest.hexdigest()[:32]


def signed_in(session: dict[str, Any], settings: Settings) -> bool:
    expected = key_fingerprint(settings)
    if expected is None:
        return True
    given = session.get(SESSION_AUTH_KEY)
    return isinstance(given, str) and hmac.compare_digest(given, expected)


class SignedOutSessions:
    """Session ids signed out before their cookie expires: Redis (every instance agrees)
    when the app has it, this process's memory otherwise or while Redis fails."""

    def __init__(self) -> None:
        self.local: dict[str, float] = {}

    async def revoke(self, redis: Any, sid: str) -> None:
        now = time.monotonic()
        self.local = {k: v for k, v in self.local.items() if v > now}
        self.local[sid] = now + SESSION_MAX_AGE_S
        if redis is not None:
            try:
                await redis.set(REVOKED_KEY_PREFIX + sid, "1", ex=SESSION_MAX_AGE_S)
            except Exception as exc:
                log.warning("console.signout_not_shared", error=str(exc))

    async def revoked(self, redis: Any, sid: str) -> bool:
        if self.local.get(sid, 0.0) > time.monotonic():
            return True
        if redis is None:
            return False
        try:
            return bool(await redis.exists(REVOKED_KEY_PREFIX + sid))
        except Exception as exc:
            log.warning("console.signout_check_failed", error=str(exc))
            return False


SIGNED_OUT = SignedOutSessions()


def new_session_id(session: dict[str, Any]) -> None:
    session[SESSION_ID_KEY] = secrets.token_urlsafe(16)


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get(SESSION_CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(CSRF_TOKEN_BYTES)
        session[SESSION_CSRF_KEY] = token
    return token


def session_secret(settings: Settings) -> str:
    """The session cookie's signing key: derived from ``SECRET_KEY`` (every instance
    agrees), else random per process (a loopback development server)."""
    if settings.secret_key is None:
        return PROCESS_SECRET
    raw = settings.secret_key.get_secret_value().encode()
    return hashlib.sha256(b"voicebot-console-session:" + raw).hexdigest()


class ConsoleGuard:
    """Sign-in and CSRF checks for everything under ``/ui`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith(CONSOLE_PREFIX):  # ASGI servers before the full-path rule
            path = scope.get("root_path", "") + path
        session: dict[str, Any] = scope["session"]
        send = _with_security_headers(send, cacheable=path.startswith(STATIC_PREFIX))
        if not path.startswith(OPEN_PREFIXES) and not await self._signed_in(scope, session):
            await self._to_sign_in(scope, path)(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            ok, receive = await _csrf_ok(scope, receive, session)
            if not ok:
                response = HTMLResponse(
                    "<!doctype html><html lang=he dir=rtl><body><p>"
                    "הטופס פג תוקף או שאינו שלנו; טענו את הדף מחדש ונסו שוב</p></body></html>",
                    status_code=403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _signed_in(self, scope: Scope, session: dict[str, Any]) -> bool:
        if not signed_in(session, self.settings):
            return False
        if self.settings.api_key is None:
            return True
        sid = session.get(SESSION_ID_KEY)
        if not isinstance(sid, str):
            return False
        redis = app_state(Request(scope)).redis
        if await SIGNED_OUT.revoked(redis, sid):
            session.clear()
            return False
        return True

    def _to_sign_in(self, scope: Scope, path: str) -> Response:
        target = "/ui/sign-in"
        if scope["method"] == "GET" and path not in ("/ui", "/ui/"):
            query = scope.get("query_string", b"").decode("latin-1")
            target += "?next=" + quote(path + ("?" + query if query else ""), safe="")
        if Headers(scope=scope).get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)


async def _csrf_ok(scope: Scope, receive: Receive, session: dict[str, Any]) -> tuple[bool, Receive]:
    """Whether the request carries the session's CSRF token; the receive to go on with
    (the body, read here to find a form field, is replayed to the route)."""
    expected = session.get(SESSION_CSRF_KEY)
    headers = Headers(scope=scope)
    given = headers.get(CSRF_HEADER)
    if given is None and headers.get("content-type", "").startswith(FORM_TYPES):
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        original = receive
        receive = _replay(bytes(body), original)
        form = await Request(scope, _replay(bytes(body), original)).form()
        try:
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        finally:
            await form.close()
    ok = (
        isinstance(expected, str)
        and isinstance(given, str)
        and hmac.compare_digest(given.encode(), expected.encode())
    )
    return ok, receive


def _with_security_headers(send: Send, *, cacheable: bool) -> Send:
    """``send`` that adds :data:`SECURITY_HEADERS` (and ``no-store`` unless ``cacheable``,
    replacing whatever caching a page or the API handler it borrows asked for)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if cacheable or name.lower() != b"cache-control"
            ]
            headers.extend(SECURITY_HEADERS)
            if not cacheable:
                headers.append(NO_STORE)
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _replay(body: bytes, then: Receive) -> Receive:
    """The buffered body as one message, then whatever the connection says next."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive
