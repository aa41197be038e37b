"""Issue #12 through the text conversation API, on the real database: a hello is not a
goodbye, a request to meet books the meeting (only "call me back" schedules a callback),
and "didn't hear" repeats the question.

The wall clock is moved (time-machine) to a Tuesday 09:00 in Israel so "מחר בעשר" is a
business-hours slot whatever day the suite runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import time_machine

from tests.integration.api.conversation import create_lead, talk

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=TZ)  # Tuesday


@pytest.fixture(autouse=True)
def _tuesday_morning() -> Iterator[None]:
    with time_machine.travel(NOW, tick=True):
        yield


def _kinds(replies: list[dict[str, object]]) -> list[str]:
    return [a["kind"] for r in replies for a in r["actions"]]  # type: ignore[attr-defined]


async def test_hello_then_meeting_tomorrow_at_ten_is_stored(client: httpx.AsyncClient) -> None:
    """ "שלום" keeps the call going; "אפשר לקבוע פגישה מחר בעשר" stores a meeting at 10:00."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["שלום", "אפשר לקבוע פגישה מחר בעשר"])
    assert replies[0]["intent"] == "greeting" and replies[0]["end_call"] is False
    assert replies[1]["intent"] == "book_meeting" and replies[1]["end_call"] is True
    assert _kinds(replies) == ["book_meeting", "end_call"]
    meetings = (await client.get("/api/v1/meetings")).json()["items"]
    assert [(m["lead_id"], m["start"][:16]) for m in meetings] == [(lead_id, "2026-03-11T10:00")]
    assert (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"] == "meeting_booked"


async def test_call_me_back_tomorrow_at_ten_is_a_callback_not_a_meeting(
    client: httpx.AsyncClient,
) -> None:
    """ "תחזרו אליי מחר בעשר" schedules a callback at 10:00 and stores no meeting."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["הלו", "תחזרו אליי מחר בעשר"])
    assert _kinds(replies) == ["schedule_callback", "end_call"]
    assert not (await client.get("/api/v1/meetings")).json()["items"]
    assert (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"] == "callback"


async def test_didnt_hear_repeats_then_the_price_is_answered(client: httpx.AsyncClient) -> None:
    """ "לא שמעתי" repeats the question (not a no); a price question then leads to slots."""
    lead_id = await create_lead(client)
    replies = await talk(client, lead_id, ["לא שמעתי", "כן", "רגע כמה זה עולה"])
    assert replies[0]["intent"] == "repeat" and replies[0]["end_call"] is False
    assert replies[0]["reply"].endswith("זה זמן טוב לדבר דקה?")
    assert replies[2]["intent"] == "price_question" and replies[2]["end_call"] is False


async def test_wrong_number_and_not_interested_end_politely(client: httpx.AsyncClient) -> None:
    """ "טעות במספר" ends at once; "לא מעוניין" twice ends as not interested."""
    lead_id = await create_lead(client)
    wrong = await talk(client, lead_id, ["הלו", "טעות במספר"])
    assert wrong[-1]["end_call"] is True and wrong[-1]["intent"] == "wrong_number"
    other = await talk(client, lead_id, ["כן", "לא מעוניין", "לא באמת שלא"])
    assert other[-1]["end_call"] is True
    assert (await client.get(f"/api/v1/leads/{lead_id}")).json()["status"] == "not_interested"
