"""A text conversation through RuleBrain on the real database: a weekday named bare at the
slots ("מה עם רביעי בעשר") is stored on that weekday, on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from structlog.testing import capture_logs

from voicebot.brain import state as st
from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar
from voicebot.db.booking_tools import DbBookingTools
from voicebot.db.models import Meeting


@pytest.fixture(autouse=True)
def _captured_logs() -> Iterator[None]:
    with capture_logs():
        yield


async def test_bare_weekday_at_the_slots_is_stored_on_that_weekday(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Sunday noon, slots offered for today; "מה עם רביעי בעשר" is read back as Wednesday
    10:00, and after "כן" the one meeting row starts Wednesday 2 December 10:00."""
    services = app.state.voicebot
    settings = services.settings
    tz = settings.tz
    now = datetime(2026, 11, 29, 12, 0, tzinfo=tz)  # Sunday
    lead = await client.post("/api/v1/leads", json={"phone": "052-5551234", "name": "דני"})
    lead_id = lead.json()["id"]
    tools = DbBookingTools(settings=settings, sessions=services.sessions, lead_id=lead_id)
    brain = RuleBrain(tools=tools, calendar=BusinessCalendar.from_settings(settings))
    state = ConversationState(lead=LeadContext(lead_id=lead_id, name="דני", company=None))
    await brain.greet(state)
    for line in ("כן בטח", "אנחנו חמישה", "בעיקר אני עונה בעצמי"):
        await brain.respond(state, line, now=now)
    assert state.stage == st.PROPOSE
    assert all(slot.date() == now.date() for slot in state.proposed_slots)

    read_back = await brain.respond(state, "מה עם רביעי בעשר", now=now)
    assert "רביעי" in read_back.text and not read_back.end_call
    booked = await brain.respond(state, "כן", now=now)

    assert booked.end_call and state.outcome == "booked"
    async with services.sessions() as session:
        rows = (await session.execute(select(Meeting))).scalars().all()
    assert [(m.lead_id, m.start_at.astimezone(tz)) for m in rows] == [
        (lead_id, datetime(2026, 12, 2, 10, 0, tzinfo=tz))
    ]
