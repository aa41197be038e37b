"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError
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


async def handle_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("api.unhandled_error", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "internal server error")


EXCEPTION_HANDLERS = {
    VoicebotError: handle_voicebot_error,
    ValidationError: handle_validation_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}
