"""A conversation stays with its lead: another lead's id is a 409, an omitted one keeps it.

The wall clock is moved to a Tuesday 09:00 in Israel so "מחר בעשר" is a business-hours slot.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import time_machine

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=TZ)  # Tuesday


@pytest.fixture(autouse=True)
def _tuesday_morning() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


async def _lead(client: httpx.AsyncClient, phone: str, name: str) -> int:
    response = await client.post("/api/v1/leads", json={"phone": phone, "name": name})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _say(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await client.post("/api/v1/conversation", json=body)


async def test_other_leads_id_on_a_conversation_is_409(client: httpx.AsyncClient) -> None:
    """Continuing דנה's conversation with גיל's lead id is refused and books nothing for
    either (it booked גיל's meeting in a call that greeted דנה)."""
    dana = await _lead(client, "054-4567890", "דנה")
    gil = await _lead(client, "052-3456789", "גיל")
    first = await _say(client, message="שלום", lead_id=dana)
    conversation_id = first.json()["conversation_id"]
    second = await _say(
        client,
        message="אפשר לקבוע פגישה מחר בעשר",
        lead_id=gil,
        conversation_id=conversation_id,
    )
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "conflict"
    assert (await client.get("/api/v1/meetings")).json()["items"] == []


async def test_omitted_lead_id_keeps_the_conversations_lead(client: httpx.AsyncClient) -> None:
    """A later turn without lead_id acts for the conversation's lead (it had no lead, so
    the agent said the free time was taken)."""
    dana = await _lead(client, "054-4567890", "דנה")
    first = await _say(client, message="שלום", lead_id=dana)
    conversation_id = first.json()["conversation_id"]
    second = await _say(
        client, message="אפשר לקבוע פגישה מחר בעשר", conversation_id=conversation_id
    )
    assert second.status_code == 200, second.text
    assert second.json()["intent"] == "book_meeting"
    [meeting] = (await client.get("/api/v1/meetings")).json()["items"]
    assert meeting["lead_id"] == dana
    assert meeting["start"].startswith("2026-03-11T10:00")
