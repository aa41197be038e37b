"""Turn timings, measured once here, and the call's persistence: turns, outcome, metrics."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.brain.base import ConversationState, Reply
from voicebot.brain.summary import CallFacts, summarize
from voicebot.db.locks import lock_call_rows
from voicebot.db.models import Call, CallStatus, CallTurn, Meeting
from voicebot.db.outcomes import call_outcome, record_outcome
from voicebot.db.types import utcnow

if TYPE_CHECKING:
    from voicebot.call.services import CallServices

log = structlog.get_logger(__name__)

# How long finish() waits for the call's queued turns before it stores the outcome.
TURN_DRAIN_TIMEOUT_S = 30.0
# Backoff of a failed turn write: first wait, doubling up to the max.
WRITE_RETRY_FIRST_S = 0.1
WRITE_RETRY_MAX_S = 5.0
# The outer bound of one turn write: this many statement timeouts (connect, insert,
# commit), plus a margin.
WRITE_TIMEOUT_STATEMENTS = 3
WRITE_TIMEOUT_MARGIN_S = 1.0


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
    confirmed_at: float | None = None

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
            "held": ms(self.tts_first_byte_at, self.confirmed_at)
            if self.confirmed_at is not None
            and self.tts_first_byte_at is not None
            and self.confirmed_at > self.tts_first_byte_at
            else None,
            "first_frame": ms(
                _latest(self.tts_first_byte_at, self.confirmed_at), self.first_frame_at
            ),
            "total": ms(self.speech_end_at or self.started_at, self.first_frame_at),
        }
        return {k: v for k, v in values.items() if v is not None}


def _latest(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)


class CallRecorder:
    """Buffers a call's turns and writes them off the speaking path, in order.

    :meth:`flush` hands the buffered turns to the recorder's one writer task and returns at
    once: the turn loop never waits on the database. The writer commits batches in the
    order they were flushed, one short transaction each, each bounded by the statement
    timeout. A batch that fails (database down, stalled, timed out) is retried with
    backoff until it is stored, so no turn is lost while the process lives; a batch the
    database refuses for good (a duplicate ``seq``: an earlier commit whose answer was
    lost) is logged and skipped. :meth:`finish` waits for the writer (bounded) before it
    stores the outcome.
    """

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
        self._batches: deque[list[CallTurn]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self.written = 0  # turns committed so far
        self.write_failures = 0  # failed attempts (each retried)

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

    async def flush(self, *, wait: bool = False) -> None:
        """Queue the buffered turns for the writer; with ``wait``, return once every turn
        queued so far is stored (a webhook that must answer after its turn is saved)."""
        if self._pending:
            now = utcnow()
            for turn in self._pending:
                turn.created_at = turn.created_at or now
            self._batches.append(self._pending)
            self._pending = []
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_all())
        if wait:
            await self.drain(None)

    async def drain(self, timeout_s: float | None = TURN_DRAIN_TIMEOUT_S) -> bool:
        """Wait until every queued turn is stored; False when ``timeout_s`` ran out first
        (the writer goes on retrying in the background)."""
        writer = self._writer
        if writer is None or writer.done():
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(writer)
        except TimeoutError:
            log.error(
                "call.turns_pending",
                call_sid=self._call_sid,
                batches=len(self._batches),
                waited_s=timeout_s,
            )
            return False
        return True

    async def _write_all(self) -> None:
        delay_s = WRITE_RETRY_FIRST_S
        retried = False  # the head batch failed once: its commit may have landed anyway
        while self._batches:
            batch = self._batches[0]
            try:
                # The engine bounds each statement (statement_timeout, busy timeout); this
                # outer bound only catches what those cannot (a connection that never
                # answers), since cancelling a commit under way leaves its outcome unknown.
                async with asyncio.timeout(self._write_timeout_s()):
                    async with self._services.autocommit() as session:
                        await insert_at_once(session, [_row(turn) for turn in batch])
            except IntegrityError as exc:
                seqs = [t.seq for t in batch]
                if retried:  # an earlier attempt was committed after all
                    log.info("call.turns_already_stored", call_sid=self._call_sid, seqs=seqs)
                    self.written += len(batch)
                else:
                    log.error(
                        "call.turns_refused",
                        call_sid=self._call_sid,
                        seqs=seqs,
                        error=type(exc.orig).__name__ if exc.orig else type(exc).__name__,
                    )
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                self.write_failures += 1
                retried = True
                if self.write_failures == 1 or delay_s >= WRITE_RETRY_MAX_S:
                    log.warning(
                        "call.turns_not_saved_yet",
                        call_sid=self._call_sid,
                        error=type(exc).__name__,
                        retry_in_s=delay_s,
                    )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, WRITE_RETRY_MAX_S)
                continue
            else:
                self.written += len(batch)
            self._batches.popleft()
            delay_s, retried = WRITE_RETRY_FIRST_S, False

    def _write_timeout_s(self) -> float:
        statement_s = self._services.settings.db_statement_timeout_ms / 1000
        return statement_s * WRITE_TIMEOUT_STATEMENTS + WRITE_TIMEOUT_MARGIN_S

    async def finish(self, state: ConversationState) -> None:
        """Store the remaining turns, the call's outcome and summary, and the lead's status.

        The outcome comes from the brain's state; a call that already has one (set by a
        status callback or an earlier finish) keeps it, and so does its summary.
        """
        await self.flush()
        await self.drain()
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
                # Lock order attempt → call → member → lead, as status callbacks take it.
                call = await lock_call_rows(session, self._call_id, refresh=True)
                if call is None:
                    return
                now = utcnow()
                call.ended_at = call.ended_at or now
                if call.status not in _FINAL:
                    call.status = CallStatus.COMPLETED
                if call.answered_at is not None:
                    call.duration_s = int((call.ended_at - call.answered_at).total_seconds())
                call.summary = call.summary or summary
                # Last: the end-of-call report it records reads the fields above.
                await record_outcome(session, call, outcome, settings=self._services.settings)
                await session.commit()
            log.info("call.finished", call_sid=self._call_sid, outcome=str(final))
        except SQLAlchemyError as exc:
            log.error("call.finish_not_saved", call_sid=self._call_sid, error=type(exc).__name__)


async def insert_at_once(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Store ``rows`` of call_turns in one statement (one multi-row INSERT: all or none),
    in ``session`` of the autocommit engine (``CallServices.autocommit``). No transaction
    spans a trip back to the event loop, so on SQLite the one write lock is held for the
    statement alone, not while a busy loop gets round to the COMMIT (every call's stream
    claim and turn writes wait on that lock)."""
    await session.execute(insert(CallTurn).values(rows))


def _row(turn: CallTurn) -> dict[str, Any]:
    """The turn's column values (the row's defaults applied: every row of one multi-row
    INSERT names the same columns)."""
    return {
        "call_id": turn.call_id,
        "seq": turn.seq,
        "role": turn.role,
        "text": turn.text,
        "interrupted": bool(turn.interrupted),
        "intent": turn.intent,
        "latency": turn.latency or {},
        "created_at": turn.created_at or utcnow(),
    }


_FINAL = {
    CallStatus.COMPLETED,
    CallStatus.BUSY,
    CallStatus.NO_ANSWER,
    CallStatus.FAILED,
    CallStatus.CANCELED,
}
