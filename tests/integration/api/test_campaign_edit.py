"""Editing a campaign (PATCH): validated like a create, refused by field while running."""

from __future__ import annotations

import httpx
from sqlalchemy import update
from starlette.applications import Starlette

from voicebot.api.state import AppState
from voicebot.db.models import Campaign


async def _set_status(app: Starlette, campaign_id: int, status: str) -> None:
    state: AppState = app.state.voicebot
    async with state.sessions() as session:
        await session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(status=status)
        )
        await session.commit()


async def _campaign(client: httpx.AsyncClient) -> int:
    created = await client.post("/api/v1/campaigns", json={"name": "מבצע חורף"})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def test_draft_takes_every_field_and_keeps_the_rest(client: httpx.AsyncClient) -> None:
    """A draft changes the script, window, pacing and retry fields given, nothing else."""
    cid = await _campaign(client)
    script = {"greeting": "שלום, מדברת נועה ממשרד כהן. יש לך דקה?"}
    edited = await client.patch(
        f"/api/v1/campaigns/{cid}",
        json={
            "agent_script": script,
            "window_start": "10:00",
            "window_end": "18:30",
            "window_days": "Sun,Mon",
            "calls_per_second": 0.05,
            "max_concurrent_calls": 2,
            "max_attempts": 5,
            "retry_base_min": 10,
            "retry_max_min": 60,
            "blocked_dates": ["2027-04-22"],
        },
    )
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["agent_script"] == script
    assert (body["window_start"], body["window_end"], body["window_days"]) == (
        "10:00",
        "18:30",
        "sun,mon",
    )
    assert (body["calls_per_second"], body["max_concurrent_calls"]) == (0.05, 2)
    assert (body["max_attempts"], body["retry_base_min"], body["retry_max_min"]) == (5, 10, 60)
    assert body["blocked_dates"] == ["2027-04-22"]
    assert body["name"] == "מבצע חורף"
    assert body["status"] == "draft"
    assert (await client.get(f"/api/v1/campaigns/{cid}")).json() == body


async def test_edit_is_validated_like_create(client: httpx.AsyncClient) -> None:
    """A window ending before its start (given half in the edit, half stored), bad day names,
    a retry cap below the stored base, a bad script, null and unknown fields are 422s naming
    the field, and nothing is stored."""
    cid = await _campaign(client)
    before = (await client.get(f"/api/v1/campaigns/{cid}")).json()
    cases = [
        ({"window_end": "08:00"}, "window_end"),
        ({"window_days": "Sun,Funday"}, "window_days"),
        ({"retry_max_min": 5}, "retry_max_min"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"calls_per_second": 0}, "calls_per_second"),
        ({"max_attempts": None}, "max_attempts"),
        ({"agent_script": {"version": 99}}, "agent_script.version"),
        ({"status": "running"}, "status"),
    ]
    for patch, field in cases:
        response = await client.patch(f"/api/v1/campaigns/{cid}", json=patch)
        assert response.status_code == 422, (patch, response.text)
        fields = {d["field"] for d in response.json()["error"]["details"]}
        assert field in fields, (patch, fields)
    assert (await client.get(f"/api/v1/campaigns/{cid}")).json() == before


async def test_running_takes_pacing_and_refuses_the_window(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Running: pacing and retry fields change; a window or script change is a 409 naming
    those fields (and stores nothing, not even the allowed fields sent with them); a field
    sent with its stored value is no change; paused takes the window."""
    cid = await _campaign(client)
    await _set_status(app, cid, "running")
    paced = await client.patch(
        f"/api/v1/campaigns/{cid}", json={"calls_per_second": 0.5, "retry_base_min": 15}
    )
    assert paced.status_code == 200, paced.text
    assert paced.json()["calls_per_second"] == 0.5

    refused = await client.patch(
        f"/api/v1/campaigns/{cid}",
        json={"window_end": "19:00", "agent_script": {"greeting": "היי"}, "max_attempts": 4},
    )
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_state"
    assert "pause" in error["message"]
    assert {d["field"] for d in error["details"]} == {"window_end", "agent_script"}
    stored = (await client.get(f"/api/v1/campaigns/{cid}")).json()
    assert (stored["window_end"], stored["max_attempts"]) == ("20:00", 3)

    whole_form = {k: stored[k] for k in ("window_start", "window_end", "timezone", "calendar")}
    same = await client.patch(f"/api/v1/campaigns/{cid}", json=whole_form | {"max_attempts": 4})
    assert same.status_code == 200, same.text
    assert same.json()["max_attempts"] == 4

    await _set_status(app, cid, "paused")
    paused = await client.patch(f"/api/v1/campaigns/{cid}", json={"window_end": "19:00"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["window_end"] == "19:00"


async def test_finished_campaign_is_not_edited(app: Starlette, client: httpx.AsyncClient) -> None:
    """A cancelled campaign refuses every edit (409); an unknown campaign is a 404."""
    cid = await _campaign(client)
    await _set_status(app, cid, "cancelled")
    response = await client.patch(f"/api/v1/campaigns/{cid}", json={"name": "חדש"})
    assert response.status_code == 409
    assert response.json()["error"]["details"] == [
        {"field": "name", "message": "campaign is cancelled"}
    ]
    assert (await client.patch("/api/v1/campaigns/999999", json={"name": "x"})).status_code == 404


async def test_patch_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    """The edit is declared: PATCH with the CampaignPatch body and its 409."""
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/api/v1/campaigns/{campaign_id}"]["patch"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/CampaignPatch")
    assert {"200", "404", "409", "422"} <= set(operation["responses"])


async def test_reporting_fields_are_editable_and_clearable_while_running(
    client: httpx.AsyncClient, app: Starlette
) -> None:
    """The webhook and eligibility endpoints move while a campaign runs (the dispatcher and
    the dialer read them per event and per dial); null clears them; recording waits for a
    pause, like the script."""
    cid = await _campaign(client)
    await _set_status(app, cid, "running")
    moved = await client.patch(
        f"/api/v1/campaigns/{cid}",
        json={
            "webhook_url": "https://crm.example.co.il/hooks/voicebot",
            "webhook_secret": "s3cr3t-s3cr3t-s3cr3t",
            "eligibility_url": "https://crm.example.co.il/eligible",
        },
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["webhook_url"] == "https://crm.example.co.il/hooks/voicebot"
    assert moved.json()["eligibility_url"] == "https://crm.example.co.il/eligible"
    assert "s3cr3t" not in moved.text  # the secret is write-only
    state: AppState = app.state.voicebot
    async with state.sessions() as session:
        stored = await session.get(Campaign, cid)
        assert stored is not None and stored.webhook_secret == "s3cr3t-s3cr3t-s3cr3t"

    cleared = await client.patch(
        f"/api/v1/campaigns/{cid}", json={"webhook_url": None, "eligibility_url": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["webhook_url"], cleared.json()["eligibility_url"]) == (None, None)

    recording = await client.patch(f"/api/v1/campaigns/{cid}", json={"record": True})
    assert recording.status_code == 409, recording.text
    assert [d["field"] for d in recording.json()["error"]["details"]] == ["record"]
    not_null = await client.patch(f"/api/v1/campaigns/{cid}", json={"record": None})
    assert not_null.status_code == 422, not_null.text
    bad = await client.patch(f"/api/v1/campaigns/{cid}", json={"webhook_url": "ftp://x"})
    assert bad.status_code == 422, bad.text
