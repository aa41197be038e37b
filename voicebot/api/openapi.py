"""The OpenAPI 3.1 document, built from the routes and the pydantic request models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from voicebot import __version__
from voicebot.api.schemas import AddLeadsIn, CampaignIn, DncIn, LeadIn, LeadPatch, MeetingIn

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
            "required": ["code", "message"],
        }
    },
}

# (path, method, summary, request model)
OPERATIONS: list[tuple[str, str, str, type[BaseModel] | None]] = [
    ("/api/v1/leads", "post", "Create a lead", LeadIn),
    ("/api/v1/leads", "get", "List leads (status, tag, company, q, limit, offset)", None),
    ("/api/v1/leads/import", "post", "Import leads from CSV (text/csv body)", None),
    ("/api/v1/leads/{lead_id}", "get", "Get a lead", None),
    ("/api/v1/leads/{lead_id}", "patch", "Update a lead", LeadPatch),
    ("/api/v1/leads/{lead_id}", "delete", "Delete a lead", None),
    ("/api/v1/meetings", "post", "Book a meeting", MeetingIn),
    ("/api/v1/meetings", "get", "List meetings in a range (from, to: ISO 8601 with offset)", None),
    ("/api/v1/meetings/{meeting_id}", "get", "Get a meeting", None),
    ("/api/v1/meetings/{meeting_id}/cancel", "post", "Cancel a meeting", None),
    ("/api/v1/campaigns", "post", "Create a campaign", CampaignIn),
    ("/api/v1/campaigns", "get", "List campaigns", None),
    ("/api/v1/campaigns/{campaign_id}", "get", "Get a campaign", None),
    ("/api/v1/campaigns/{campaign_id}/leads", "post", "Add leads by ids or filter", AddLeadsIn),
    ("/api/v1/campaigns/{campaign_id}/stats", "get", "Counts per membership state", None),
    ("/api/v1/campaigns/{campaign_id}/{action}", "post", "start | pause | resume | cancel", None),
    ("/api/v1/calls", "get", "List calls", None),
    ("/api/v1/calls/{call_id}", "get", "Get a call with its turns", None),
    ("/api/v1/do-not-call", "post", "Add a number to do-not-call", DncIn),
    ("/api/v1/do-not-call", "get", "List do-not-call entries", None),
    ("/api/v1/do-not-call/{phone}", "delete", "Remove a number from do-not-call", None),
    ("/health", "get", "Liveness", None),
    ("/health/ready", "get", "Readiness: database, Redis, broker", None),
    ("/health/info", "get", "Version and masked configuration", None),
    ("/metrics", "get", "Prometheus metrics", None),
]


def build_openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for path, method, summary, model in OPERATIONS:
        op: dict[str, Any] = {
            "summary": summary,
            "responses": {
                "200": {"description": "OK"},
                "default": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        if model is not None:
            schemas[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                    }
                },
            }
        if path.startswith("/api/"):
            op["security"] = [{"bearer": []}, {"apiKey": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "voicebot", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }


async def openapi(_request: Request) -> Response:
    return JSONResponse(build_openapi())
