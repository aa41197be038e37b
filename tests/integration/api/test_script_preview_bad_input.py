"""The script preview with an odd lead name: control characters are a 422, digits are words."""

from __future__ import annotations

import httpx


async def _campaign(client: httpx.AsyncClient) -> int:
    script = {"agent_name": "מיכל", "company": "סטודיו שלווה", "offer": "שיעור ראשון חינם."}
    response = await client.post("/api/v1/campaigns", json={"name": "יוגה", "agent_script": script})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_control_character_in_lead_name_is_422(client: httpx.AsyncClient) -> None:
    """A NUL or a line break in ``lead_name`` is refused like in every other one-line field."""
    campaign_id = await _campaign(client)
    for name in ("דנה\x00", "דנה\nכהן"):
        response = await client.get(
            f"/api/v1/campaigns/{campaign_id}/script/preview", params={"lead_name": name}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"


async def test_lead_name_of_digits_is_spoken_without_digits(client: httpx.AsyncClient) -> None:
    """A lead "name" that is a long number (an ID pasted into the name column) or a
    placeholder is no name: the greeting goes without it, never handed to TTS as digits, and
    a placeholder in it is never filled."""
    campaign_id = await _campaign(client)
    for name in ("1" * 199, "{agent}"):
        response = await client.get(
            f"/api/v1/campaigns/{campaign_id}/script/preview", params={"lead_name": name}
        )
        assert response.status_code == 200, response.text
        greeting = response.json()["spoken"]["greeting"]
        assert not any(c.isdigit() for c in greeting)
        assert greeting.count("מיכל") == 1  # the agent's own name, once
