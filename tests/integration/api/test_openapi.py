"""The generated OpenAPI document, the /docs page and 405 answers."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from voicebot.api.openapi import iter_operations


async def test_every_served_operation_is_declared(app: Starlette) -> None:
    """Every HTTP route the app serves carries a route declaration (tags, replies)."""
    undeclared = [
        f"{method.upper()} {path}"
        for path, method, _endpoint, spec in iter_operations(app.routes)
        if spec is None
    ]
    assert undeclared == []


async def test_document_lists_every_route_with_parameters_and_replies(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Each served operation appears, with query parameters, tags and response schemas."""
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    served = {(path, method) for path, method, _e, _s in iter_operations(app.routes)}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    assert ("/api/v1/conversation", "post") in documented
    assert ("/twilio/voice", "post") in documented
    leads = doc["paths"]["/api/v1/leads"]["get"]
    names = {p["name"] for p in leads["parameters"] if p["in"] == "query"}
    assert {"limit", "offset", "status", "tag", "company", "q"} <= names
    assert leads["tags"] == ["leads"]
    ok = leads["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/LeadPage"}
    meetings = doc["paths"]["/api/v1/meetings"]["get"]["parameters"]
    assert {"from", "to"} <= {p["name"] for p in meetings}
    lead_path = doc["paths"]["/api/v1/leads/{lead_id}"]["get"]["parameters"][0]
    assert lead_path["schema"]["maximum"] == 2**31 - 1
    error = doc["paths"]["/api/v1/leads/{lead_id}"]["get"]["responses"]["404"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    assert doc["components"]["schemas"]["LeadIn"]["examples"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("tags"), f"{method} {path} has no tags"
            assert any(s.startswith("2") for s in op["responses"]), f"{method} {path}"


async def test_docs_page_serves_swagger_ui_from_the_package(client: httpx.AsyncClient) -> None:
    """/docs is Swagger UI whose script and styles come from this server, not a CDN."""
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in page.text
    assert "https://" not in page.text and "http://" not in page.text
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text[:2000]
    assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200


async def test_method_not_allowed_names_allowed_methods(client: httpx.AsyncClient) -> None:
    """A 405 carries Allow with every method of the path (routes split per method too)."""
    leads = await client.delete("/api/v1/leads")
    assert leads.status_code == 405
    assert leads.json()["error"]["code"] == "method_not_allowed"
    assert leads.headers["allow"] == "GET, HEAD, POST"
    one = await client.post("/api/v1/leads/7")
    assert one.status_code == 405
    assert one.headers["allow"] == "DELETE, GET, HEAD, PATCH, PUT"
    health = await client.post("/health")
    assert health.headers["allow"] == "GET, HEAD"


async def test_documented_examples_are_valid_requests(app: Starlette) -> None:
    """Every example a request model documents passes that model's own validation."""
    checked = 0
    for _path, _method, _endpoint, spec in iter_operations(app.routes):
        model = spec.body if spec is not None else None
        if model is None or spec is None or spec.body_media_type != "application/json":
            continue
        for example in model.model_json_schema().get("examples", []):
            model.model_validate(example)
            checked += 1
    assert checked >= 6
