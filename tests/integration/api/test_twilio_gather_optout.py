"""A <Gather> call's opt-out while the database refuses the do-not-call write: Twilio gets
the removal goodbye and <Hangup/>, and the web process's own drain writes the number once
the database takes it (on SQLite and Postgres)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import structlog
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from tests.integration.api.test_twilio_gather import (  # the fixtures with their helpers
    LEAD_PHONE,
    TwilioSide,
    _db,
    _load,
    _need_espeak,
    _seed_outbound_call,
    _sid,
    _xml,
    settings,
    twilio,
)
from voicebot.brain.phrases import DNC_BYE
from voicebot.config import Settings
from voicebot.db.models import DoNotCall

__all__ = ["_need_espeak", "settings", "twilio"]


@contextlib.contextmanager
def do_not_call_refused() -> Iterator[None]:
    """Every statement on the do-not-call table fails in the driver until the block exits
    (the database failing at the moment of the opt-out, and at the drain meanwhile)."""

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "do_not_call" in statement:
            raise OperationalError(statement, {}, ConnectionRefusedError("database is down"))

    event.listen(Engine, "before_cursor_execute", refuse)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", refuse)


async def test_a_refused_opt_out_is_said_done_hung_up_and_written_once_the_database_is_back(
    twilio: TwilioSide, settings: Settings
) -> None:
    """'תורידו אותי מהרשימה' while the write fails: the goodbye and <Hangup/>, the call's
    outcome do_not_call, `optout.deferred` logged once with the call; once the database
    is back the app's drain loop puts the number on do-not-call."""
    call_sid = _sid()
    lead_id = await _seed_outbound_call(settings, call_sid=call_sid)
    first = await twilio.answer(call_sid)
    with (
        do_not_call_refused(),
        capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs,
    ):
        bye = await twilio.turn(first.text, call_sid, SpeechResult="תורידו אותי מהרשימה")
    assert bye.status_code == 200, bye.text
    assert _xml(bye.text).find("Hangup") is not None and _xml(bye.text).find("Gather") is None
    deferred = [e for e in logs if e["event"] == "optout.deferred"]
    assert [(e["call_sid"], e["lead_id"]) for e in deferred] == [(call_sid, lead_id)], logs
    call, _, turns = await _load(settings, call_sid)
    assert call.outcome == "do_not_call"
    assert turns[-1].role == "assistant" and turns[-1].text == DNC_BYE

    engine, sessions = await _db(settings)
    try:
        async with asyncio.timeout(3 * settings.campaign_sweep_interval_s + 5):
            while True:
                async with sessions() as session:
                    dnc = [d.phone for d in (await session.scalars(select(DoNotCall))).all()]
                if dnc:
                    break
                await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    assert dnc == [LEAD_PHONE]
