"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from voicebot.errors import InvalidInputError, RateLimitedError, VoicebotError

log = structlog.get_logger(__name__)


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status)


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"]) or "body",
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
    return error_response(exc.status_code, code, str(exc.detail))


async def handle_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("api.unhandled_error", error_type=type(exc).__name__)
    return error_response(500, "internal_error", "internal server error")


EXCEPTION_HANDLERS = {
    VoicebotError: handle_voicebot_error,
    ValidationError: handle_validation_error,
    HTTPException: handle_http_error,
    Exception: handle_unexpected,
}
