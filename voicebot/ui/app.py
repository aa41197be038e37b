"""The operations console under ``/ui``: its mount, static files, sign-in and sign-out.

:func:`console_mount` builds the ``/ui`` mount: Starlette's signed session cookie
(``voicebot_console``, path ``/ui``, HttpOnly, SameSite=strict, Secure on https, 12 h),
then :class:`~voicebot.ui.auth.ConsoleGuard` (sign-in and CSRF), then the pages. Failed
sign-ins count against ``AUTH_FAILURES_PER_MINUTE`` per client address with the same
limiter as the API key.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles

from voicebot.api.rate_limits import RateLimits, per_minute
from voicebot.api.state import app_state
from voicebot.config import Settings
from voicebot.ui import pages_calls, pages_campaigns, pages_leads, pages_overview
from voicebot.ui.auth import (
    SESSION_AUTH_KEY,
    SESSION_ID_KEY,
    SESSION_MAX_AGE_S,
    SIGNED_OUT,
    ConsoleGuard,
    key_fingerprint,
    new_session_id,
    session_secret,
)
from voicebot.ui.render import page

STATIC_DIR = Path(__file__).parent / "static"
SESSION_COOKIE = "voicebot_console"
CSV_UPLOAD_SUFFIXES = ("/csv/preview", "/csv/import")
"""Console paths that take a CSV file: they get ``MAX_IMPORT_BYTES`` instead of the body cap."""


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (never another site) to go back to after sign-in."""
    if (
        target
        and target.startswith("/ui/")
        and not target.startswith("/ui//")
        and "\\" not in target
        and ".." not in target.split("?", 1)[0]
        and target.isprintable()
    ):
        return target
    return "/ui/"


def sign_in_routes(limits: RateLimits, settings: Settings) -> list[Route]:
    failures = per_minute(settings.auth_failures_per_minute)

    async def sign_in_form(request: Request) -> Response:
        if app_state(request).settings.api_key is None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        return page(request, "sign_in.html", {"next": request.query_params.get("next", "")})

    async def sign_in(request: Request) -> Response:
        state = app_state(request)
        form = await request.form()
        target = _safe_next(str(form.get("next") or ""))
        expected = state.settings.api_key
        if expected is None:
            return RedirectResponse(target, 303)
        client = request.client.host if request.client else "unknown"
        retry_after = await limits.blocked(failures, "authfail", client)
        if retry_after is not None:
            context = {"next": target, "error": "signin.too_many", "seconds": retry_after}
            return page(
                request,
                "sign_in.html",
                context,
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )
        given = str(form.get("api_key") or "").strip().encode()
        if not hmac.compare_digest(given, expected.get_secret_value().encode()):
            await limits.hit(failures, "authfail", client)
            context = {"next": target, "error": "signin.bad_key"}
            return page(request, "sign_in.html", context, status_code=401)
        request.session.clear()  # a fresh session (and CSRF token) for the signed-in user
        request.session[SESSION_AUTH_KEY] = key_fingerprint(state.settings)
        new_session_id(request.session)
        return RedirectResponse(target, 303)

    return [
        Route("/sign-in", sign_in_form, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
    ]


async def sign_out(request: Request) -> Response:
    sid = request.session.get(SESSION_ID_KEY)
    if isinstance(sid, str):  # copies of this cookie stop working too, not just this one
        await SIGNED_OUT.revoke(app_state(request).redis, sid)
    request.session.clear()
    return RedirectResponse("/ui/sign-in", 303)


def console_mount(settings: Settings, limits: RateLimits) -> Mount:
    routes = [
        *sign_in_routes(limits, settings),
        Route("/sign-out", sign_out, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *pages_overview.routes,
        *pages_calls.routes,
        *pages_campaigns.routes,
        *pages_leads.routes,
    ]
    guarded = ConsoleGuard(Router(routes), settings=settings)
    app = SessionMiddleware(
        guarded,
        secret_key=session_secret(settings),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE_S,
        path="/ui",
        same_site="strict",
        https_only=settings.public_base_url.startswith("https://"),
    )
    return Mount("/ui", app=app)
