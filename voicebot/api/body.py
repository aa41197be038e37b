"""Reading requests: JSON bodies, query strings and path parameters, through the same
pydantic models the route declares (:mod:`voicebot.api.spec`).

Bad input of any kind is an :class:`InvalidInputError` (422, the one error shape):
malformed or empty JSON, JSON nested deeper than :data:`MAX_JSON_DEPTH`, text with
characters the databases cannot store, values the model refuses.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from voicebot.api.errors import validation_details
from voicebot.api.fields import DB_INT_MAX, first_unstorable
from voicebot.errors import InvalidInputError

M = TypeVar("M", bound=BaseModel)

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects in a request body (ours need 4)."""


def _too_deep(value: Any, depth: int = 1) -> bool:
    if depth > MAX_JSON_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return any(_too_deep(item, depth + 1) for item in value)
    return False


def decode_json(raw: bytes) -> Any:
    """Parse a request body; raise InvalidInputError for anything we would not store."""
    if not raw:
        raise InvalidInputError(
            "request body is empty", details=[{"field": "body", "message": "required"}]
        )
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError) as exc:
        # JSONDecodeError, NaN/Infinity, a float past 1e308, an integer of >4,300 digits
        raise InvalidInputError(
            "malformed JSON", details=[{"field": "body", "message": str(exc)[:200]}]
        ) from exc
    except RecursionError as exc:  # the C decoder's own depth guard (~1,000 levels)
        raise _depth_error() from exc
    if _too_deep(data):
        raise _depth_error()
    if (found := first_unstorable(data)) is not None:
        field, problem = found
        raise InvalidInputError("invalid text", details=[{"field": field, "message": problem}])
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _depth_error() -> InvalidInputError:
    return InvalidInputError(
        f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
        details=[{"field": "body", "message": f"at most {MAX_JSON_DEPTH} levels"}],
    )


async def read_json(request: Request) -> Any:
    return decode_json(await request.body())


async def parse_body(request: Request, model: type[M]) -> M:
    data = await read_json(request)
    return parse_model(model, data)


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError("invalid request", details=validation_details(exc)) from exc


def parse_query(request: Request, model: type[M]) -> M:
    """The query string as ``model`` (the last value of a repeated name wins)."""
    data: dict[str, Any] = dict(request.query_params.items())
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(
            "invalid query parameters", details=validation_details(exc, prefix="query")
        ) from exc


def parse_path(request: Request, model: type[M]) -> M:
    """The path parameters as ``model`` (ids in range, names validated)."""
    try:
        return model.model_validate(dict(request.path_params))
    except ValidationError as exc:
        raise InvalidInputError(
            "invalid path parameters", details=validation_details(exc, prefix="path")
        ) from exc


def int_param(request: Request, name: str) -> int:
    """A path id within the databases' id range (422 otherwise)."""
    raw = request.path_params[name]
    try:
        value = raw if isinstance(raw, int) else int(str(raw))
    except ValueError as exc:
        raise InvalidInputError(f"{name} must be an integer") from exc
    if not 1 <= value <= DB_INT_MAX or (not isinstance(raw, int) and not str(raw).isascii()):
        raise InvalidInputError(
            f"{name} must be 1..{DB_INT_MAX}",
            details=[{"field": f"path.{name}", "message": "out of range"}],
        )
    return value
