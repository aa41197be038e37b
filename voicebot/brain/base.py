"""The brain contract: what the call pipeline and the text API exchange with a brain.

Owns the plain dataclasses of a conversation (turns, state, lead, actions, replies)
and the two Protocols: :class:`BookingTools` (the only I/O a brain may do) and
:class:`Brain` (rule-based or LLM-backed, interchangeable).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from voicebot.providers.sentences import split_sentences

Role = Literal["user", "assistant"]
ActionKind = Literal[
    "book_meeting",
    "schedule_callback",
    "mark_not_interested",
    "add_to_do_not_call",
    "transfer_to_human",
    "end_call",
]
BookingStatus = Literal["ok", "conflict", "outside_hours"]


@dataclass(slots=True)
class ChatTurn:
    """One utterance in the conversation, as text."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class LeadContext:
    """What the brain knows about the person called."""

    lead_id: int | None
    name: str | None
    company: str | None
    phone: str | None = None  # E.164: an opt-out is kept even when the database fails


@dataclass(slots=True)
class ConversationState:
    """Everything a brain needs between turns; round-trips through a plain dict (Redis).

    ``stage`` is brain-specific (see :mod:`voicebot.brain.state` for RuleBrain's).
    """

    stage: str = "greeting"
    history: list[ChatTurn] = field(default_factory=list)
    lead: LeadContext | None = None
    unclear_count: int = 0
    proposed_slots: list[datetime] = field(default_factory=list)
    qualify_index: int = 0
    objection_count: int = 0
    rejected_rounds: int = 0
    pending_slot: datetime | None = None
    resume_stage: str | None = None
    booked_meeting_id: int | None = None
    callback_at: datetime | None = None
    outcome: str | None = None
    answers: list[str] = field(default_factory=list)  # replies to qualifying questions

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (datetimes as ISO 8601 with offset)."""
        return {
            "stage": self.stage,
            "history": [{"role": t.role, "content": t.content} for t in self.history],
            "lead": None
            if self.lead is None
            else {
                "lead_id": self.lead.lead_id,
                "name": self.lead.name,
                "company": self.lead.company,
                "phone": self.lead.phone,
            },
            "unclear_count": self.unclear_count,
            "proposed_slots": [s.isoformat() for s in self.proposed_slots],
            "qualify_index": self.qualify_index,
            "objection_count": self.objection_count,
            "rejected_rounds": self.rejected_rounds,
            "pending_slot": _iso(self.pending_slot),
            "resume_stage": self.resume_stage,
            "booked_meeting_id": self.booked_meeting_id,
            "callback_at": _iso(self.callback_at),
            "outcome": self.outcome,
            "answers": list(self.answers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationState:
        """Inverse of :meth:`to_dict`; missing keys take their defaults."""
        lead = data.get("lead")
        return cls(
            stage=str(data.get("stage", "greeting")),
            history=[
                ChatTurn(role=t["role"], content=t["content"]) for t in data.get("history", [])
            ],
            lead=None
            if lead is None
            else LeadContext(lead["lead_id"], lead["name"], lead["company"], lead.get("phone")),
            unclear_count=int(data.get("unclear_count", 0)),
            proposed_slots=[datetime.fromisoformat(s) for s in data.get("proposed_slots", [])],
            qualify_index=int(data.get("qualify_index", 0)),
            objection_count=int(data.get("objection_count", 0)),
            rejected_rounds=int(data.get("rejected_rounds", 0)),
            pending_slot=_from_iso(data.get("pending_slot")),
            resume_stage=data.get("resume_stage"),
            booked_meeting_id=data.get("booked_meeting_id"),
            callback_at=_from_iso(data.get("callback_at")),
            outcome=data.get("outcome"),
            answers=[str(a) for a in data.get("answers", [])],
        )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class Action:
    """A side effect the brain performed (or asks the pipeline to perform) this turn."""

    kind: ActionKind
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the agent says next, already written for speech, and what it did."""

    text: str
    intent: str
    actions: tuple[Action, ...]
    end_call: bool
    transfer: bool


@dataclass(frozen=True, slots=True)
class Sentence:
    """One complete sentence of a reply in progress, written for speech, ready for TTS.

    ``first_token_at`` (``time.monotonic()``) is when the model's first token of this turn
    arrived, for LLM replies; the call's latency breakdown reads it.
    """

    text: str
    first_token_at: float | None = field(default=None, compare=False)


# What :meth:`Brain.respond_stream` yields: sentences as soon as each is complete, then
# exactly one :class:`Reply` whose ``text`` is every yielded sentence joined by spaces.
ReplyEvent = Sentence | Reply


@dataclass(frozen=True, slots=True)
class BookingResult:
    """Outcome of :meth:`BookingTools.book_meeting`."""

    status: BookingStatus
    meeting_id: int | None = None
    start: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class BookingTools(Protocol):
    """The calendar and lead operations a brain may call; bound to one lead by the caller."""

    async def available_slots(
        self, *, day: date | None, now: datetime, limit: int
    ) -> list[datetime]:
        """Free meeting starts, earliest first; on ``day`` first when given."""
        ...

    async def book_meeting(self, *, start: datetime, notes: str | None) -> BookingResult: ...

    async def schedule_callback(self, *, when: datetime) -> None: ...

    async def mark_not_interested(self, *, reason: str) -> None: ...

    async def add_to_do_not_call(self) -> None: ...


async def stream_of(reply: Reply) -> AsyncGenerator[ReplyEvent, None]:
    """A finished reply as a reply stream: its sentences, then the reply itself."""
    for text in split_sentences(reply.text):
        yield Sentence(text)
    yield reply


class Brain(Protocol):
    """Turns caller input into the agent's next reply, mutating the conversation state."""

    async def greet(self, state: ConversationState) -> Reply: ...

    async def respond(
        self, state: ConversationState, user_text: str, *, now: datetime
    ) -> Reply: ...

    def respond_stream(
        self, state: ConversationState, user_text: str, *, now: datetime
    ) -> AsyncGenerator[ReplyEvent, None]:
        """Like :meth:`respond`, but yields each sentence as soon as it is complete (so TTS
        starts on the first one), then the final :class:`Reply`."""
        ...

    async def on_dtmf(self, state: ConversationState, digit: str, *, now: datetime) -> Reply: ...

    async def on_silence(self, state: ConversationState, *, count: int, now: datetime) -> Reply: ...
