"""The text conversation API: scripted Hebrew conversations reach their real outcomes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.api.conversation import create_lead, talk


def _kinds(replies: list[dict[str, Any]]) -> list[str]:
    return [a["kind"] for r in replies for a in r["actions"]]


async def test_booking_lands_in_meetings_table(client: httpx.AsyncClient) -> None:
    """A caller who agrees to 'מחר בעשר' gets a meeting stored at 10:00 local, and hears it."""
    lead_id = await create_lead(client)
    replies = await talk(
        client,
        lead_id,
        ["כן, אפשר לדבר", "כן מעניין אותי", "אממ יש לנו בערך עשרים עובדים", "מחר בעשר", "כן מתאים"],
    )
    assert "book_meeting" in _kinds(replies)
    assert "בעשר" in replies[-1]["reply"]
    meetings = (await client.get("/api/v1/meetings")).json()["items"]
    assert len(meetings) == 1
    assert meetings[0]["lead_id"] == lead_id
    assert meetings[0]["start"][11:16] == "10:00"
    lead = (await client.get(f"/api/v1/leads/{lead_id}")).json()
    assert lead["status"] == "meeting_booked"


async def test_opt_out_lands_in_do_not_call(client: httpx.AsyncClient) -> None:
    """'תוריד אותי מהרשימה' puts the number on do-not-call and ends the conversation."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["תוריד אותי מהרשימה"])
    assert replies[0]["end_call"] is True
    dnc = (await client.get("/api/v1/do-not-call")).json()["items"]
    assert [d["phone"] for d in dnc] == ["+972544567890"]
    assert (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"] == "do_not_call"


async def test_call_me_tomorrow_at_five_schedules_callback(client: httpx.AsyncClient) -> None:
    """'תתקשר אליי מחר בחמש' schedules a callback at 17:00 local."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["אני עסוק עכשיו", "תתקשר אליי מחר בחמש"])
    callback = [a for r in replies for a in r["actions"] if a["kind"] == "schedule_callback"]
    assert len(callback) == 1
    assert callback[0]["data"]["when"][11:16] == "17:00"
    assert (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"] == "callback"


async def test_request_for_human_triggers_transfer(client: httpx.AsyncClient) -> None:
    """Asking for a person returns the transfer action."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["אפשר לדבר עם בן אדם?"])
    assert replies[0]["transfer"] is True
    assert "transfer_to_human" in _kinds(replies)


async def test_history_accepted_in_both_formats(client: httpx.AsyncClient) -> None:
    """Legacy {user, agent} and {role, content} histories are accepted; answer is role/content."""
    legacy = await client.post(
        "/api/v1/conversation",
        json={"message": "כמה זה עולה?", "history": [{"user": "הלו", "agent": "שלום, מדברת נועה"}]},
    )
    modern = await client.post(
        "/api/v1/conversation",
        json={
            "message": "כמה זה עולה?",
            "history": [
                {"role": "user", "content": "הלו"},
                {"role": "assistant", "content": "שלום, מדברת נועה"},
            ],
        },
    )
    assert legacy.status_code == modern.status_code == 200
    assert legacy.json()["history"][:2] == modern.json()["history"][:2]
    assert legacy.json()["history"][0] == {"role": "user", "content": "הלו"}
    assert legacy.json()["intent"] == "price_question"
    bad = await client.post("/api/v1/conversation", json={"message": "x", "history": [{"foo": 1}]})
    assert bad.status_code == 422
