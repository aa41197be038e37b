"""Meetings over HTTP, on SQLite and Postgres: booking rules and cancellation."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

TZ = ZoneInfo("Asia/Jerusalem")


def next_business_day_at(hour: int, minute: int = 0) -> datetime:
    day = datetime.now(TZ) + timedelta(days=1)
    while day.weekday() in (4, 5):  # Friday, Saturday are not business days by default
        day += timedelta(days=1)
    return day.replace(hour=hour, minute=minute, second=0, microsecond=0)


async def _lead(client: httpx.AsyncClient, phone: str = "054-4567890") -> int:
    response = await client.post("/api/v1/leads", json={"phone": phone, "name": "אבי"})
    assert response.status_code == 201
    return int(response.json()["id"])


async def test_meeting_crud_and_overlap(client: httpx.AsyncClient) -> None:
    """A meeting is booked, listed by range and cancelled; an overlapping one is 409."""
    lead_id = await _lead(client)
    start = next_business_day_at(10)
    created = await client.post(
        "/api/v1/meetings",
        json={"lead_id": lead_id, "start": start.isoformat(), "duration_min": 30},
    )
    assert created.status_code == 201, created.text
    meeting = created.json()
    assert datetime.fromisoformat(meeting["start"]) == start
    assert meeting["start"].endswith("+02:00") or meeting["start"].endswith("+03:00")

    clash = await client.post(
        "/api/v1/meetings",
        json={"lead_id": lead_id, "start": (start + timedelta(minutes=15)).isoformat()},
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["details"]["meeting_id"] == meeting["id"]

    adjacent = await client.post(
        "/api/v1/meetings",
        json={"lead_id": lead_id, "start": (start + timedelta(minutes=30)).isoformat()},
    )
    assert adjacent.status_code == 201

    in_range = await client.get(
        "/api/v1/meetings",
        params={"from": start.isoformat(), "to": (start + timedelta(minutes=20)).isoformat()},
    )
    assert [m["id"] for m in in_range.json()["items"]] == [meeting["id"]]

    cancelled = await client.post(f"/api/v1/meetings/{meeting['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    rebooked = await client.post(
        "/api/v1/meetings", json={"lead_id": lead_id, "start": start.isoformat()}
    )
    assert rebooked.status_code == 201
    assert (await client.post(f"/api/v1/meetings/{meeting['id']}/cancel")).status_code == 409


async def test_meeting_outside_business_hours_is_422(client: httpx.AsyncClient) -> None:
    """22:00 and naive (offset-less) times are refused with field-level errors."""
    lead_id = await _lead(client)
    late = next_business_day_at(22)
    response = await client.post(
        "/api/v1/meetings", json={"lead_id": lead_id, "start": late.isoformat()}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "start"
    naive = await client.post(
        "/api/v1/meetings", json={"lead_id": lead_id, "start": "2030-01-01T10:00:00"}
    )
    assert naive.status_code == 422


async def test_meeting_for_unknown_lead_is_404(client: httpx.AsyncClient) -> None:
    """Booking for a lead id that does not exist is 404."""
    response = await client.post(
        "/api/v1/meetings", json={"lead_id": 999, "start": next_business_day_at(11).isoformat()}
    )
    assert response.status_code == 404
