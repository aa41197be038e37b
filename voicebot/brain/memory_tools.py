"""In-memory :class:`~voicebot.brain.base.BookingTools` for unit tests and the text demo.

Not for production: nothing is persisted and one instance serves one lead. It is
faithful where it matters for the brain: bookings are checked against business
hours, Shabbat and lead time (via :mod:`voicebot.brain.slots`) and against every
meeting already held, and every call is recorded for assertions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from voicebot.brain.base import BookingResult
from voicebot.brain.slots import BusinessCalendar, Interval, free_slots, is_bookable, overlaps


@dataclass(frozen=True, slots=True)
class BookedMeeting:
    """A meeting held by the in-memory calendar."""

    meeting_id: int
    start: datetime
    end: datetime
    notes: str | None


@dataclass(slots=True)
class InMemoryBookingTools:
    """Calendar and lead flags in process memory; ``busy`` are other people's meetings."""

    calendar: BusinessCalendar
    busy: list[Interval] = field(default_factory=list)
    meetings: list[BookedMeeting] = field(default_factory=list)
    callbacks: list[datetime] = field(default_factory=list)
    not_interested_reasons: list[str] = field(default_factory=list)
    do_not_call: bool = False
    # "now" for booking checks: the last ``now`` the brain passed (or set by a test);
    # the wall clock when neither happened.
    clock: datetime | None = None

    def _taken(self) -> list[Interval]:
        return [*self.busy, *((m.start, m.end) for m in self.meetings)]

    async def available_slots(
        self, *, day: date | None, now: datetime, limit: int
    ) -> list[datetime]:
        self.clock = now
        return free_slots(self.calendar, now=now, busy=self._taken(), day=day, limit=limit)

    async def book_meeting(self, *, start: datetime, notes: str | None) -> BookingResult:
        now = self.clock or datetime.now(UTC)
        if not is_bookable(self.calendar, start, now=now):
            return BookingResult(status="outside_hours")
        end = start + self.calendar.meeting
        if overlaps(start, end, self._taken()):
            return BookingResult(status="conflict")
        meeting = BookedMeeting(len(self.meetings) + 1, start, end, notes)
        self.meetings.append(meeting)
        return BookingResult(status="ok", meeting_id=meeting.meeting_id, start=start)

    async def schedule_callback(self, *, when: datetime) -> None:
        self.callbacks.append(when)

    async def mark_not_interested(self, *, reason: str) -> None:
        self.not_interested_reasons.append(reason)

    async def add_to_do_not_call(self) -> None:
        self.do_not_call = True
