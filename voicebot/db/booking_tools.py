"""BookingTools on the real database, bound to one lead (and optionally one call).

Each operation is its own short transaction and raises on a database failure, except
the opt-out: it is retried briefly and, failing that, kept in the opt-out outbox (see
:mod:`voicebot.db.optouts`), so a caller's removal is never lost to a passing fault.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.brain.base import BookingResult
from voicebot.brain.slots import BusinessCalendar, free_slots
from voicebot.config import Settings
from voicebot.db import meetings as booking
from voicebot.db.engine import uncancelled
from voicebot.db.models import Lead, LeadStatus
from voicebot.db.optouts import durable_opt_out
from voicebot.db.types import utcnow
from voicebot.errors import ConflictError, InvalidInputError, NotFoundError
from voicebot.store.optout_outbox import OptOut, OptOutOutbox

SLOT_SEARCH_HORIZON_DAYS = 14


class DbBookingTools:
    """The brain's calendar and lead operations, each in its own short transaction."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        lead_id: int | None,
        call_id: int | None = None,
        call_sid: str | None = None,
        phone: str | None = None,
        optouts: OptOutOutbox | None = None,
    ) -> None:
        """``phone`` is the lead's number (E.164), kept so an opt-out can be stored without
        the database; ``optouts`` holds opt-outs the database refused (None: raise)."""
        self._settings = settings
        self._sessions = sessions
        self._lead_id = lead_id
        self._call_id = call_id
        self._call_sid = call_sid
        self._phone = phone
        self._optouts = optouts
        self._calendar = BusinessCalendar.from_settings(settings)
        self.clock: datetime | None = None

    async def available_slots(
        self, *, day: date | None, now: datetime, limit: int
    ) -> list[datetime]:
        self.clock = now
        horizon_end = now + timedelta(days=SLOT_SEARCH_HORIZON_DAYS)
        # A read the reply may abandon (barge-in, a discarded speculative reply): it
        # finishes rather than being cancelled in flight (see uncancelled()).
        busy = await uncancelled(self._busy(now, horizon_end))
        return free_slots(self._calendar, now=now, busy=busy, day=day, limit=limit)

    async def _busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        async with self._sessions() as session:
            return await booking.busy_intervals(session, start, end)

    async def book_meeting(self, *, start: datetime, notes: str | None) -> BookingResult:
        if self._lead_id is None:
            return BookingResult(status="conflict")
        async with self._sessions() as session:
            try:
                meeting = await booking.book_meeting(
                    session,
                    self._settings,
                    lead_id=self._lead_id,
                    start=start,
                    notes=notes,
                    call_id=self._call_id,
                    now=self.clock or datetime.now(start.tzinfo),
                )
            except InvalidInputError:
                return BookingResult(status="outside_hours")
            except (ConflictError, NotFoundError):
                return BookingResult(status="conflict")
            await self._set_lead(session, status=LeadStatus.MEETING_BOOKED)
            return BookingResult(status="ok", meeting_id=meeting.id, start=start)

    async def schedule_callback(self, *, when: datetime) -> None:
        async with self._sessions() as session:
            await self._set_lead(session, status=LeadStatus.CALLBACK, callback_at=when)

    async def mark_not_interested(self, *, reason: str) -> None:
        async with self._sessions() as session:
            lead = await self._lead(session)
            if lead is not None:
                lead.status = LeadStatus.NOT_INTERESTED
                lead.notes = ((lead.notes or "") + f"\nnot interested: {reason}").strip()
                await session.commit()

    async def add_to_do_not_call(self) -> None:
        """The lead's number on do-not-call: written now, or kept in the outbox when the
        database fails (see :func:`~voicebot.db.optouts.durable_opt_out`)."""
        if self._lead_id is None and self._phone is None:
            return
        entry = OptOut(
            phone=self._phone,
            lead_id=self._lead_id,
            source="call",
            requested_at=utcnow(),
            call_sid=self._call_sid,
        )
        await durable_opt_out(self._sessions, self._settings, entry, outbox=self._optouts)

    async def _lead(self, session: AsyncSession) -> Lead | None:
        if self._lead_id is None:
            return None
        return await session.get(Lead, self._lead_id)

    async def _set_lead(self, session: AsyncSession, **values: object) -> None:
        if self._lead_id is None:
            return
        await session.execute(update(Lead).where(Lead.id == self._lead_id).values(**values))
        await session.commit()
