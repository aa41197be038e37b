"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import exc as sqlalchemy_exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

from voicebot.errors import InvalidInputError, RateLimitedError, VoicebotError

log = structlog.get_logger(__name__)


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status)


def validation_details(exc: ValidationError, *, prefix: str = "") -> list[dict[str, Any]]:
    """Each problem as ``{"field", "message", "type"}``; ``prefix`` names where the field is."""
    return [
        {
            "field": ".".join(str(p) for p in (prefix, *e["loc"]) if p != "") or "body",
            "message": e["msg"],
            "type": e["type"],
        }
        for e in exc.errors()
    ]


async def handle_voicebot_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, VoicebotError):
        return await handle_unexpected(_request, exc)
    response = error_response(exc.http_status, exc.code, exc.message, exc.details)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    if exc.http_status >= 500:
        log.error("api.error", code=exc.code, message=exc.message)
    return response


async def handle_validation_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ValidationError):
        return await handle_unexpected(_request, exc)
    return error_response(422, InvalidInputError.code, "invalid request", validation_details(exc))


async def handle_http_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        return await handle_unexpected(_request, exc)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(allowed_methods(_request.scope))
    elif exc.headers:
        response.headers.update(exc.headers)
    return response


def allowed_methods(scope: Scope) -> list[str]:
    """Every method some route serves at this path (a path may have one route per method)."""
    methods: set[str] = set()
    app = scope.get("app")
    fresh: Scope = {"type": "http", "path": scope["path"], "root_path": "", "method": "OPTIONS"}
    _collect_methods(getattr(app, "routes", []), fresh, methods)
    return sorted(methods)


def _collect_methods(routes: list[BaseRoute], scope: Scope, methods: set[str]) -> None:
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            _collect_methods(route.routes, {**scope, **child}, methods)
        elif isinstance(route, Route) and route.methods:
            methods.update(route.methods)


DATABASE_RETRY_AFTER_S = 5
"""Retry-After of a 503 while the database cannot be reached."""
_DATABASE_MODULES = ("sqlalchemy.", "asyncpg.", "aiosqlite.")


async def handle_database_unavailable(request: Request, exc: Exception) -> Response:
    """The database down, refusing or timing out: 503 ``database_unavailable`` with
    Retry-After and one warning line (an outage is not a bug in a route: no traceback per
    request). An OS error that did not come through the database driver is unexpected."""
    if request.scope["type"] != "http":
        raise exc  # a websocket route owns its failures, as before this handler
    if not isinstance(exc, sqlalchemy_exc.DBAPIError | sqlalchemy_exc.TimeoutError) and not (
        _raised_by_database_driver(exc)
    ):
        return await handle_unexpected(request, exc)
    log.warning("api.database_unavailable", error_type=type(exc).__name__)
    response = error_response(503, "database_unavailable", "the database is unavailable")
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response


def _raised_by_database_driver(exc: BaseException) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith(_DATABASE_MODULES):
            return True
        frame = frame.tb_next
    return False


async def handle_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("api.unhandled_error", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "internal server error")


EXCEPTION_HANDLERS = {
    VoicebotError: handle_voicebot_error,
    ValidationError: handle_validation_error,
    HTTPException: handle_http_error,
    sqlalchemy_exc.OperationalError: handle_database_unavailable,
    sqlalchemy_exc.InterfaceError: handle_database_unavailable,
    sqlalchemy_exc.TimeoutError: handle_database_unavailable,
    OSError: handle_database_unavailable,
    Exception: handle_unexpected,
}
