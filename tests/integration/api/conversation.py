"""Talking to the text conversation API, shared by its rule-brain and LLM-brain tests."""

from __future__ import annotations

from typing import Any

import httpx


async def create_lead(client: httpx.AsyncClient) -> int:
    """The lead דנה (054-4567890), the other side of the scripted conversations."""
    response = await client.post("/api/v1/leads", json={"phone": "054-4567890", "name": "דנה"})
    return int(response.json()["id"])


async def talk(client: httpx.AsyncClient, lead_id: int, lines: list[str]) -> list[dict[str, Any]]:
    """Say ``lines`` one by one in one conversation; return every response body."""
    replies: list[dict[str, Any]] = []
    conversation_id = None
    for line in lines:
        response = await client.post(
            "/api/v1/conversation",
            json={"message": line, "lead_id": lead_id, "conversation_id": conversation_id},
        )
        assert response.status_code == 200, response.text
        replies.append(response.json())
        conversation_id = replies[-1]["conversation_id"]
    return replies
