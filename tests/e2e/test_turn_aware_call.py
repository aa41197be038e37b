"""Issue #12 over the Media Streams websocket: the lead answers "שלום" (a greeting, not a
goodbye) and then asks "אפשר לקבוע פגישה מחר בעשר" (a meeting, not a callback) — and the
call ends with a meeting stored at 10:00 tomorrow.

The simulated Twilio caller speaks espeak-ng Hebrew, the provider simulator transcribes it,
the server runs under uvicorn in this process with the rule brain and SQLite. The wall
clock is moved (time-machine; asyncio's monotonic clock is untouched) to a Tuesday 09:00
in Israel, so "tomorrow at ten" is a business-hours slot whatever day the suite runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.e2e.conftest import TZ, call_server_settings, hebrew_speech, recognising_sim
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, CallTurn, Lead, Meeting
from voicebot.demo_caller import converse
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.server import free_port, running_server

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "turn-aware-auth-token"
TOMORROW_10 = datetime(2026, 3, 11, 10, 0, tzinfo=TZ)  # the day after TUESDAY_9AM
LEAD_PHONE = "+972541112233"
FROM_NUMBER = "+97233760000"
HELLO = "שלום"
BOOK = "אפשר לקבוע פגישה מחר בעשר"


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=12, phrases=(HELLO, BOOK)) as running:
        yield running


def _next_line(script: Iterator[str], agent_said: str) -> str:
    line = next(script, None)
    assert line is not None, f"the call did not end; the agent's last turn: {agent_said!r}"
    return line


async def test_hello_then_meeting_tomorrow_at_ten_is_stored(
    frozen_clock: None, tmp_path: Path, sim: ProviderSim
) -> None:
    """ "שלום" gets the pitch, "אפשר לקבוע פגישה מחר בעשר" books 10:00 tomorrow; no callback."""
    port = free_port()
    settings = call_server_settings(
        tmp_path,
        port=port,
        sim=sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        conversation_mode="stream",
        twilio_account_sid=None,  # no Twilio REST: the server ends the call by closing the stream
    )
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            lead = Lead(phone=LEAD_PHONE, name="יעל", company="סטודיו יעל")
            session.add(lead)
            await session.commit()
            lead_id = lead.id
        script = iter((HELLO, BOOK))
        printed: list[str] = []
        async with running_server(settings, port=port) as base:
            call_sid, _, _ = await converse(
                base,
                sessions,
                {HELLO: hebrew_speech(HELLO), BOOK: hebrew_speech(BOOK)},
                printed.append,
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                lead_phone=LEAD_PHONE,
                from_number=FROM_NUMBER,
                answer=lambda agent: _next_line(script, agent),
            )
        async with sessions() as session:
            call = (await session.scalars(select(Call).where(Call.call_sid == call_sid))).one()
            meetings = (await session.scalars(select(Meeting))).all()
            stored_lead = await session.get(Lead, lead_id)
            turns = (
                await session.scalars(
                    select(CallTurn).where(CallTurn.call_id == call.id).order_by(CallTurn.seq)
                )
            ).all()
    finally:
        await engine.dispose()
    print("\n".join(printed))
    said = [(t.role, t.text) for t in turns]
    assert [text for role, text in said if role == "user"] == [HELLO, BOOK]
    agent = [text for role, text in said if role == "assistant"]
    assert agent[1].startswith("שלום!")  # the hello is answered and the pitch goes on
    assert "קבענו" in agent[-1] and "מחר בעשר" in agent[-1]
    assert [(m.lead_id, m.call_id) for m in meetings] == [(lead_id, call.id)]
    assert meetings[0].start_at.astimezone(TZ) == TOMORROW_10
    assert stored_lead is not None
    assert stored_lead.status == "meeting_booked" and stored_lead.callback_at is None
