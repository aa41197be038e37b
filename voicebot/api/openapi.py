"""The OpenAPI 3.1 document, generated from the app's routes and their declarations.

Every :class:`~starlette.routing.Route` (inside mounts too) whose handler carries an
:class:`~voicebot.api.spec.OpSpec` becomes one operation per method: path and query
parameters from the declared models, the request body, each reply's schema, the one
error shape for the declared error statuses, tags and security. Model schemas come
from pydantic and live under ``components/schemas``. A route without a declaration
still appears (summary from its docstring), so nothing served is missing.

The interactive page at ``/docs`` is Swagger UI from the ``swagger-ui-py`` package,
served from its files on disk: no CDN at run time.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from voicebot import __version__
from voicebot.api.spec import JSON, ErrorOut, OpSpec, spec_of

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = "/docs/assets"
REF_TEMPLATE = "#/components/schemas/{model}"
STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Bad request",
    401: "Missing or wrong API key",
    403: "Bad Twilio signature",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Invalid input",
    429: "Rate limited",
    503: "Unavailable",
}
TAGS = [
    {"name": "leads", "description": "People to call, with consent and status."},
    {"name": "meetings", "description": "Meetings booked by the agent or the API."},
    {"name": "campaigns", "description": "Outbound campaigns: leads, pacing, state machine."},
    {"name": "calls", "description": "Calls with their turns and latencies."},
    {"name": "do-not-call", "description": "Numbers never dialled."},
    {"name": "conversation", "description": "The agent over text, same brain as on calls."},
    {"name": "twilio", "description": "Twilio's signed webhooks (called by Twilio only)."},
    {"name": "ops", "description": "Health probes, metrics and this document."},
]


def iter_operations(
    routes: list[BaseRoute], prefix: str = ""
) -> Iterator[tuple[str, str, Any, OpSpec | None]]:
    """Every ``(path template, method, endpoint, declaration)`` the app serves over HTTP."""
    for route in routes:
        if isinstance(route, Mount):
            yield from iter_operations(route.routes, prefix + route.path)
        elif isinstance(route, Route) and route.include_in_schema:
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                yield (
                    prefix + route.path_format,
                    method.lower(),
                    route.endpoint,
                    spec_of(route.endpoint),
                )


class _Schemas:
    """Every declared model's schema under ``components/schemas``, generated in one pass by
    pydantic so that two models of one name get distinct component names."""

    def __init__(self, specs: list[OpSpec]) -> None:
        keys: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorOut, "serialization")}
        for spec in specs:
            keys.update((m, "validation") for m in (spec.path, spec.query, spec.body) if m)
            keys.update((r.model, "serialization") for r in spec.replies if r.model)
        ordered = sorted(keys, key=lambda key: (key[0].__module__, key[0].__qualname__, key[1]))
        refs, top = models_json_schema(ordered, ref_template=REF_TEMPLATE)
        self.refs = refs
        self.components: dict[str, Any] = top.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
        return dict(self.refs[(model, mode)])

    def parameters(self, model: type[BaseModel], where: str) -> list[dict[str, Any]]:
        name = self.refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]
        schema = self.components[name]
        required = set(schema.get("required", []))
        params = []
        for prop_name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": prop_name,
                "in": where,
                "required": where == "path" or prop_name in required,
                "schema": {k: v for k, v in prop.items() if k not in ("description", "title")},
            }
            if description := prop.get("description"):
                param["description"] = description
            params.append(param)
        return params


def _operation(spec: OpSpec | None, endpoint: Any, schemas: _Schemas) -> dict[str, Any]:
    if spec is None:
        doc = (endpoint.__doc__ or endpoint.__name__).strip().splitlines()[0]
        return {"summary": doc, "responses": {"200": {"description": "OK"}}}
    op: dict[str, Any] = {
        "summary": spec.summary,
        "tags": list(spec.tags),
        "operationId": endpoint.__name__,
    }
    if spec.description:
        op["description"] = spec.description
    params: list[dict[str, Any]] = []
    if spec.path is not None:
        params += schemas.parameters(spec.path, "path")
    if spec.query is not None:
        params += schemas.parameters(spec.query, "query")
    for name, description in spec.headers:
        params.append(
            {"name": name, "in": "header", "required": False, "description": description,
             "schema": {"type": "string"}}
        )  # fmt: skip
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {
            "required": spec.body_required,
            "content": {spec.body_media_type: {"schema": schemas.ref(spec.body)}},
        }
    responses: dict[str, Any] = {}
    for reply in spec.replies:
        entry: dict[str, Any] = {
            "description": reply.description or STATUS_TEXT.get(reply.status, "")
        }
        if reply.model is not None:
            entry["content"] = {
                reply.media_type: {"schema": schemas.ref(reply.model, "serialization")}
            }
        elif reply.media_type != JSON and reply.status != 204:
            entry["content"] = {reply.media_type: {"schema": {"type": "string"}}}
        responses[str(reply.status)] = entry
    error_ref = schemas.ref(ErrorOut, "serialization")
    for status in spec.errors:
        responses[str(status)] = {
            "description": STATUS_TEXT.get(status, "Error"),
            "content": {JSON: {"schema": error_ref}},
        }
    op["responses"] = responses
    if not spec.public:
        op["security"] = [{"bearer": []}, {"apiKey": []}, {}]
        for status in (401, 413, 429):
            responses.setdefault(
                str(status),
                {"description": STATUS_TEXT[status], "content": {JSON: {"schema": error_ref}}},
            )
    return op


def build_openapi(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these routes."""
    operations = list(iter_operations(routes))
    schemas = _Schemas([spec for _p, _m, _e, spec in operations if spec is not None])
    paths: dict[str, dict[str, Any]] = {}
    for path, method, endpoint, spec in operations:
        paths.setdefault(path, {})[method] = _operation(spec, endpoint, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "voicebot",
            "version": __version__,
            "description": (
                "Hebrew phone agents on Twilio. Every error answers with one shape: "
                '`{"error": {"code", "message", "details"}}`.'
            ),
        },
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 document of this server (generated once per app)."""
    cache = request.app.state
    doc = getattr(cache, "openapi_document", None)
    if doc is None:
        doc = build_openapi(request.app.routes)
        cache.openapi_document = doc
    return JSONResponse(doc)


DOCS_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>voicebot API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui",
deepLinking: true, persistAuthorization: true}});</script>
</body></html>
"""


async def docs(request: Request) -> Response:
    """Swagger UI for this server's OpenAPI document (assets served locally)."""
    root = html.escape(request.scope.get("root_path", ""))
    return HTMLResponse(DOCS_HTML.format(assets=root + DOCS_ASSETS_PATH, spec=root + OPENAPI_PATH))


def swagger_ui_dir() -> Path:
    """Where the ``swagger-ui-py`` package keeps Swagger UI's built files."""
    import swagger_ui

    return Path(swagger_ui.__file__).parent / "static"


def routes() -> list[BaseRoute]:
    """``/openapi.json``, ``/docs`` and the page's assets (not themselves documented)."""
    return [
        Route(OPENAPI_PATH, openapi, methods=["GET"], include_in_schema=False),
        Route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False),
        Mount(DOCS_ASSETS_PATH, app=StaticFiles(directory=swagger_ui_dir()), name="docs-assets"),
    ]
