"""Campaigns, do-not-call and calls over HTTP, on SQLite and Postgres."""

from __future__ import annotations

import httpx


async def test_campaign_state_machine_and_stats(client: httpx.AsyncClient) -> None:
    """Leads are added (do-not-call excluded); a server with no Twilio account refuses to
    start (409 naming what is missing) and the campaign stays a draft (the running
    transitions are tested with the engine, tests/integration/jobs)."""
    ids = []
    for phone in ("054-4567890", "052-5551234", "03-5551234"):
        ids.append((await client.post("/api/v1/leads", json={"phone": phone})).json()["id"])
    assert (
        await client.post("/api/v1/do-not-call", json={"phone": "03-5551234"})
    ).status_code == 201

    campaign = (await client.post("/api/v1/campaigns", json={"name": "מבצע חורף"})).json()
    cid = campaign["id"]
    assert campaign["status"] == "draft"
    added = (await client.post(f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": ids})).json()
    assert added["added"] == 2
    assert added["skipped"] == [ids[2]]

    assert (await client.post(f"/api/v1/campaigns/{cid}/resume")).status_code == 409
    refused = await client.post(f"/api/v1/campaigns/{cid}/start")
    assert refused.status_code == 409
    assert "TWILIO_ACCOUNT_SID" in {d["field"] for d in refused.json()["error"]["details"]}
    assert (await client.get(f"/api/v1/campaigns/{cid}")).json()["status"] == "draft"

    stats = (await client.get(f"/api/v1/campaigns/{cid}/stats")).json()
    assert stats["total"] == 2
    assert stats["states"]["pending"] == 2


async def test_campaign_validation(client: httpx.AsyncClient) -> None:
    """A calling window that ends before it starts and an unknown zone are 422 with fields."""
    response = await client.post(
        "/api/v1/campaigns",
        json={"name": "x", "window_start": "18:00", "window_end": "09:00", "timezone": "Mars/Base"},
    )
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == {"timezone", "window_end"}


async def test_window_end_24_00_is_the_end_of_the_day(client: httpx.AsyncClient) -> None:
    """window_end "24:00" (the whole day) is stored and returned as written, on create and
    on edit; "24:00" as a start and clocks past it are 422 naming the field."""
    response = await client.post(
        "/api/v1/campaigns", json={"name": "x", "window_start": "00:00", "window_end": "24:00"}
    )
    assert response.status_code == 201, response.text
    cid = response.json()["id"]
    assert (await client.get(f"/api/v1/campaigns/{cid}")).json()["window_end"] == "24:00"
    edit = await client.patch(f"/api/v1/campaigns/{cid}", json={"window_end": "20:00"})
    assert edit.status_code == 200 and edit.json()["window_end"] == "20:00", edit.text
    for bad in ({"window_start": "24:00"}, {"window_end": "24:01"}, {"window_end": "25:00"}):
        refused = await client.post("/api/v1/campaigns", json={"name": "x", **bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert [d["field"] for d in refused.json()["error"]["details"]] == [*bad], bad


async def test_retry_max_below_base_is_422(client: httpx.AsyncClient) -> None:
    """retry_max_min below retry_base_min is a 422 naming retry_max_min (the back-off would
    silently be the cap, 1 minute, instead of the 100 asked for)."""
    response = await client.post(
        "/api/v1/campaigns", json={"name": "x", "retry_base_min": 100, "retry_max_min": 1}
    )
    assert response.status_code == 422, response.text
    assert [d["field"] for d in response.json()["error"]["details"]] == ["retry_max_min"]


async def test_dnc_add_list_remove(client: httpx.AsyncClient) -> None:
    """A number is added once (409 the second time), listed, and removed."""
    assert (
        await client.post("/api/v1/do-not-call", json={"phone": "054-4567890"})
    ).status_code == 201
    assert (
        await client.post("/api/v1/do-not-call", json={"phone": "+972544567890"})
    ).status_code == 409
    items = (await client.get("/api/v1/do-not-call")).json()["items"]
    assert [i["phone"] for i in items] == ["+972544567890"]
    assert (await client.delete("/api/v1/do-not-call/+972544567890")).status_code == 204
    assert (await client.delete("/api/v1/do-not-call/+972544567890")).status_code == 404


async def test_unknown_call_is_404_and_list_is_empty(client: httpx.AsyncClient) -> None:
    """Calls list starts empty; an unknown call id is 404 in the common shape."""
    assert (await client.get("/api/v1/calls")).json()["items"] == []
    response = await client.get("/api/v1/calls/12345")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
