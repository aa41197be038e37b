"""Turn timings, measured once here, and the call's persistence: turns, outcome, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import SQLAlchemyError

from voicebot.brain.base import ConversationState, Reply
from voicebot.brain.summary import CallFacts, summarize
from voicebot.db.models import Call, CallStatus, CallTurn, Meeting
from voicebot.db.outcomes import call_outcome, record_outcome
from voicebot.db.types import utcnow

if TYPE_CHECKING:
    from voicebot.call.services import CallServices

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class TurnTimings:
    """Monotonic instants of one turn; differences become the latency breakdown (ms):

    ``endpoint`` speech end → end of turn decided; ``stt`` → transcript; ``llm_first_token``
    transcript → the model's first token (LLM turns); ``brain`` transcript → first sentence
    ready; ``tts_first_byte`` first token (or first sentence) → first synthesized audio;
    ``first_frame`` → first frame handed to the socket; ``total`` speech end → first frame.
    """

    started_at: float
    speech_end_at: float | None = None
    stt_done_at: float | None = None
    llm_first_token_at: float | None = None
    brain_done_at: float | None = None
    tts_first_byte_at: float | None = None
    first_frame_at: float | None = None

    def breakdown_ms(self) -> dict[str, float]:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 1)

        values = {
            "endpoint": ms(self.speech_end_at, self.started_at),
            "stt": ms(self.started_at, self.stt_done_at),
            "llm_first_token": ms(self.stt_done_at, self.llm_first_token_at),
            "brain": ms(self.stt_done_at or self.started_at, self.brain_done_at),
            "tts_first_byte": ms(
                self.llm_first_token_at or self.brain_done_at or self.started_at,
                self.tts_first_byte_at,
            ),
            "first_frame": ms(self.tts_first_byte_at, self.first_frame_at),
            "total": ms(self.speech_end_at or self.started_at, self.first_frame_at),
        }
        return {k: v for k, v in values.items() if v is not None}


class CallRecorder:
    """Buffers turns in memory and writes them in one short transaction per turn."""

    def __init__(
        self, services: CallServices, *, call_id: int, call_sid: str, last_seq: int = 0
    ) -> None:
        """``last_seq`` is the sequence number of the call's latest stored turn (a call
        answered over several webhooks records its turns through several recorders)."""
        self._services = services
        self._call_id = call_id
        self._call_sid = call_sid
        self._pending: list[CallTurn] = []
        self._seq = last_seq
        self._last_agent: CallTurn | None = None

    def user_turn(self, text: str) -> None:
        self._seq += 1
        self._pending.append(CallTurn(call_id=self._call_id, seq=self._seq, role="user", text=text))

    def agent_turn(self, reply: Reply, timings: TurnTimings, *, interrupted: bool) -> None:
        self._seq += 1
        latency = timings.breakdown_ms()
        turn = CallTurn(
            call_id=self._call_id,
            seq=self._seq,
            role="assistant",
            text=reply.text,
            intent=reply.intent,
            interrupted=interrupted,
            latency=latency,
        )
        self._pending.append(turn)
        self._last_agent = turn
        hist = self._services.metrics.stage_latency
        for stage, value in latency.items():
            hist.labels(stage).observe(value / 1000)

    def mark_interrupted(self) -> None:
        if self._last_agent is not None:
            self._last_agent.interrupted = True

    async def flush(self) -> None:
        if not self._pending:
            return
        turns, self._pending = self._pending, []
        try:
            async with self._services.sessions() as session:
                session.add_all(turns)
                await session.commit()
        except SQLAlchemyError as exc:
            log.error("call.turns_not_saved", call_sid=self._call_sid, error=type(exc).__name__)

    async def finish(self, state: ConversationState) -> None:
        """Store the remaining turns, the call's outcome and summary, and the lead's status.

        The outcome comes from the brain's state; a call that already has one (set by a
        status callback or an earlier finish) keeps it, and so does its summary.
        """
        await self.flush()
        outcome = call_outcome(state.outcome)
        try:
            async with self._services.sessions() as session:
                call = await session.get(Call, self._call_id)
                if call is None:
                    return
                has_summary = call.summary is not None
                final = call.outcome or outcome
                meeting_at = None
                if state.booked_meeting_id is not None:
                    meeting = await session.get(Meeting, state.booked_meeting_id)
                    meeting_at = None if meeting is None else meeting.start_at
            summary = None
            if not has_summary:
                facts = CallFacts(final, self._services.settings.tz, meeting_at)
                summary = await summarize(state, facts, llm=self._services.llm)
            async with self._services.sessions() as session:
                call = await session.get(Call, self._call_id)
                if call is None:
                    return
                now = utcnow()
                call.ended_at = call.ended_at or now
                await record_outcome(session, call, outcome)
                if call.status not in _FINAL:
                    call.status = CallStatus.COMPLETED
                if call.answered_at is not None:
                    call.duration_s = int((call.ended_at - call.answered_at).total_seconds())
                call.summary = call.summary or summary
                await session.commit()
            log.info("call.finished", call_sid=self._call_sid, outcome=str(final))
        except SQLAlchemyError as exc:
            log.error("call.finish_not_saved", call_sid=self._call_sid, error=type(exc).__name__)


_FINAL = {
    CallStatus.COMPLETED,
    CallStatus.BUSY,
    CallStatus.NO_ANSWER,
    CallStatus.FAILED,
    CallStatus.CANCELED,
}
