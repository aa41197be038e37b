"""SMS confirmations against what Twilio and carriers really do (the simulator counts
UCS-2 segments, refuses a non-E.164 ``To``, and carriers drop texts to landlines with
30006): Hebrew arrives intact and is billed as UCS-2; a landline lead is not texted; a
number Twilio refuses fails its row once and the sender goes on with the next."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from tests.integration.notify.test_sms import _book, _sms_rows, rig
from voicebot.db.models import Lead, SmsMessage
from voicebot.testing.twilio_api_sim import sms_segments

__all__ = ["rig"]


async def _until_final(app: Any, count: int, timeout_s: float = 15) -> list[SmsMessage]:
    final = {"delivered", "undelivered", "failed", "skipped"}
    async with asyncio.timeout(timeout_s):
        while True:
            rows = await _sms_rows(app)
            if len(rows) >= count and all(r.status in final for r in rows):
                return rows
            await asyncio.sleep(0.1)


async def test_hebrew_confirmation_is_intact_and_billed_as_ucs2(rig: Any) -> None:
    """The Hebrew confirmation reaches Twilio character for character (form-encoded
    UTF-8) and, over 70 characters, is two UCS-2 parts, not one."""
    app, sim, client = rig
    await _book(client, "054-456-3301", 11)
    (row,) = await _until_final(app, 1)
    (message,) = sim.messages
    assert message.body == row.body
    assert any("\u05d0" <= ch <= "\u05ea" for ch in message.body)
    assert message.segments == sms_segments(row.body) == (1 if len(row.body) <= 70 else 2)
    assert row.status == "delivered"


async def test_landline_lead_is_not_texted(rig: Any) -> None:
    """A business landline (03-…): no message to Twilio (the carrier would drop it with
    30006 after it was billed); the row is skipped with the reason."""
    app, sim, client = rig
    await _book(client, "03-645-1234", 11)
    (row,) = await _until_final(app, 1)
    assert (row.status, row.error) == ("skipped", "not a mobile number")
    await asyncio.sleep(0.5)
    assert sim.messages == []


async def test_number_twilio_refuses_fails_once_and_the_next_goes(rig: Any) -> None:
    """A queued confirmation whose number Twilio refuses (400/21211): that row fails with
    Twilio's reason and is not retried; the next one is delivered."""
    app, sim, client = rig
    await _book(client, "054-456-3302", 11)
    (good,) = await _until_final(app, 1)
    async with app.state.voicebot.sessions() as session:
        lead = (await session.scalars(select(Lead))).first()
        assert lead is not None
        session.add(
            SmsMessage(
                lead_id=lead.id,
                to_number="+0123",
                body="שלום, זו בדיקה",
                status="pending",
                status_events=[],
            )
        )
        await session.commit()
    await _book(client, "054-456-3303", 12)
    rows = await _until_final(app, 3)
    bad = next(r for r in rows if r.to_number == "+0123")
    assert bad.status == "failed" and bad.error is not None and "21211" in bad.error
    assert [r.status for r in rows if r.id != bad.id] == ["delivered", "delivered"]
    await asyncio.sleep(0.5)
    assert len([m for m in sim.messages if m.to == "+0123"]) == 0
    assert len(sim.messages) == 2
    assert good.status == "delivered"
