"""Route declarations: what each HTTP operation takes and answers.

Every handler carries one :class:`OpSpec`, attached with :func:`operation`. The same
declaration serves two readers: :mod:`voicebot.api.openapi` generates the OpenAPI
document from it, and the handler parses its path, query and body through the very
models it declares (:mod:`voicebot.api.body`), so the docs and the behaviour agree.

Declaring a route::

    @operation(
        summary="Get a lead",
        tags=("leads",),
        path=LeadPath,
        replies=(Returns(200, LeadOut),),
        errors=(404, 422),
    )
    async def read_lead(request: Request) -> Response: ...

Bodies are JSON unless ``body_media_type`` says otherwise (Twilio posts forms, the CSV
import posts ``text/csv``). Error statuses listed in ``errors`` answer with the one error
shape (:class:`ErrorOut`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

SPEC_ATTR = "__voicebot_operation__"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

H = TypeVar("H", bound=Callable[..., Any])


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """The one error shape of every 4xx and 5xx: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


@dataclass(frozen=True, slots=True)
class Returns:
    """One documented answer: its status, and the model of a JSON body (or a media type)."""

    status: int
    model: type[BaseModel] | None = None
    media_type: str = JSON
    description: str = ""


@dataclass(frozen=True, slots=True)
class OpSpec:
    """What one operation takes and answers (shared by every method of its route)."""

    summary: str
    tags: tuple[str, ...]
    description: str = ""
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_media_type: str = JSON
    body_required: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    """Documented request headers: (name, description)."""
    replies: tuple[Returns, ...] = ()
    errors: tuple[int, ...] = field(default=(422,))
    """Statuses answered with :class:`ErrorOut`."""
    public: bool = False
    """True when no API key is needed (health, Twilio's signed webhooks)."""


def operation(
    *,
    summary: str,
    tags: tuple[str, ...],
    description: str = "",
    path: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    body_media_type: str = JSON,
    body_required: bool = True,
    headers: tuple[tuple[str, str], ...] = (),
    replies: tuple[Returns, ...] = (),
    errors: tuple[int, ...] = (422,),
    public: bool = False,
) -> Callable[[H], H]:
    """Attach an :class:`OpSpec` to a handler; returns the handler unchanged."""
    spec = OpSpec(
        summary=summary,
        tags=tags,
        description=description,
        path=path,
        query=query,
        body=body,
        body_media_type=body_media_type,
        body_required=body_required,
        headers=headers,
        replies=replies,
        errors=errors,
        public=public,
    )

    def attach(handler: H) -> H:
        setattr(handler, SPEC_ATTR, spec)
        return handler

    return attach


def spec_of(endpoint: Any) -> OpSpec | None:
    """The declaration attached to a handler, or None for an undeclared one."""
    spec = getattr(endpoint, SPEC_ATTR, None)
    return spec if isinstance(spec, OpSpec) else None
