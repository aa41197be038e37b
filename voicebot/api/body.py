"""Reading request bodies: JSON, capped in size, parsed into pydantic models."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from voicebot.api.errors import validation_details
from voicebot.errors import InvalidInputError

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise InvalidInputError(
            "request body is empty", details=[{"field": "body", "message": "required"}]
        )
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            "malformed JSON", details=[{"field": "body", "message": str(exc)}]
        ) from exc


async def parse_body(request: Request, model: type[M]) -> M:
    data = await read_json(request)
    return parse_model(model, data)


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError("invalid request", details=validation_details(exc)) from exc


def int_param(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if isinstance(raw, int):
        return raw
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInputError(f"{name} must be an integer") from exc
