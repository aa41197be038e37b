"""Runs the LLM's tool calls on :class:`~voicebot.brain.base.BookingTools` and records effects.

Owns :class:`Toolbox` (validate → act → a JSON result the model reads) and
:class:`TurnEffects`, what the calls of one turn did, mapped onto the same
:class:`~voicebot.brain.base.Action` kinds, outcomes and :class:`ConversationState`
fields the rule brain sets, so either brain can take over the next turn. Nothing is
stored unless the arguments and the calendar rules pass; every refusal is a result
the model sees (``{"ok": false, "error": …}``), never an exception.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import structlog
from sqlalchemy.exc import SQLAlchemyError

from voicebot.brain import phrases as say
from voicebot.brain import state as st
from voicebot.brain.base import Action, BookingTools, ConversationState
from voicebot.brain.llm_tools import (
    ARGUMENT_MODELS,
    ArgumentError,
    BookMeetingArgs,
    EndCallArgs,
    NotInterestedArgs,
    ProposeSlotsArgs,
    ScheduleCallbackArgs,
    booking_problem,
    callback_problem,
    localize,
    parse_arguments,
)
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar, spread
from voicebot.brain.speech_text import format_slot_hebrew
from voicebot.providers.base import ToolCall

log = structlog.get_logger(__name__)

SLOTS_OFFERED = 2  # slots returned by one propose_slots
SLOT_FETCH_LIMIT = 12  # candidates fetched to choose a spread from
TOOL_TIMEOUT_S = 5.0  # one tool's database work
END_OUTCOMES: Final[dict[str, str]] = {
    "goodbye": "hung_up",
    "wrong_number": "wrong_number",
    "not_interested": "not_interested",
    "voicemail": "voicemail",
    "other": "ended",
}

Result = dict[str, Any]


@dataclass(slots=True)
class TurnEffects:
    """What this turn's tool calls did; becomes the Reply's actions and flags."""

    actions: list[Action] = field(default_factory=list)
    end_call: bool = False
    transfer: bool = False
    intent: str | None = None
    closing: str | None = None  # the fixed words for the last call's effect (see ToolOutcome)

    @property
    def terminal(self) -> bool:
        return self.end_call or self.transfer


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A call's result for the model, whether its arguments were not even JSON, and the fixed
    words that say what it did (spoken when the model says nothing after it)."""

    result: Result
    bad_json: bool = False
    closing: str | None = None

    def message(self) -> str:
        return json.dumps(self.result, ensure_ascii=False)


class Toolbox:
    """The LLM's tools for one call, bound to the lead's BookingTools."""

    def __init__(
        self, *, tools: BookingTools, calendar: BusinessCalendar, script: AgentScript
    ) -> None:
        self._tools = tools
        self._cal = calendar
        self._script = script

    async def run(
        self, call: ToolCall, state: ConversationState, effects: TurnEffects, *, now: datetime
    ) -> ToolOutcome:
        """Validate and perform one call; effects and state change only on success."""
        if call.name not in ARGUMENT_MODELS:
            return ToolOutcome(_error("unknown_tool", f"no tool named {call.name!r}"))
        try:
            args = parse_arguments(call.name, call.arguments)
        except ArgumentError as exc:
            return ToolOutcome(_error(exc.code, exc.message), bad_json=exc.code == "invalid_json")
        if effects.terminal:
            if call.name == "end_call":
                return ToolOutcome({"ok": True})
            return ToolOutcome(_error("call_ending", "the call is ending; say goodbye"))
        local_now = now.astimezone(self._cal.tz)
        effects.closing = None
        try:
            async with asyncio.timeout(TOOL_TIMEOUT_S):
                result = await self._dispatch(call.name, args, state, effects, local_now)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            # The database failed or stalled: the model hears it and answers the caller.
            log.warning("brain.tool_failed", tool=call.name, error=type(exc).__name__)
            effects.closing = None
            return ToolOutcome(_error("tool_failed", "the system is unavailable; apologise"))
        return ToolOutcome(result, closing=effects.closing)

    async def _dispatch(
        self,
        name: str,
        args: object,
        state: ConversationState,
        effects: TurnEffects,
        now: datetime,
    ) -> Result:
        match args:
            case ProposeSlotsArgs():
                return await self._propose(args, state, effects, now)
            case BookMeetingArgs():
                return await self._book(args, state, effects, now)
            case ScheduleCallbackArgs():
                return await self._callback(args, state, effects, now)
            case NotInterestedArgs():
                await self._tools.mark_not_interested(reason=args.reason)
                action = Action("mark_not_interested", {"reason": args.reason})
                _end(state, effects, action, "not_interested", say.NOT_INTERESTED_BYE)
            case EndCallArgs():
                await self._end_call(args, state, effects)
            case _ if name == "add_to_do_not_call":
                await self._tools.add_to_do_not_call()
                action = Action("add_to_do_not_call", {})
                _end(state, effects, action, "do_not_call", say.DNC_BYE)
            case _:  # transfer_to_human, the only other tool without arguments
                state.stage, state.outcome = st.ENDED, "transferred"
                effects.actions.append(Action("transfer_to_human", {}))
                effects.transfer, effects.intent = True, "transfer_to_human"
                effects.closing = say.TRANSFER
        return {"ok": True}

    async def _propose(
        self, args: ProposeSlotsArgs, state: ConversationState, effects: TurnEffects, now: datetime
    ) -> Result:
        if args.day is not None and args.day < now.date():
            return _error("in_the_past", "that day has passed")
        found = await self._tools.available_slots(day=args.day, now=now, limit=SLOT_FETCH_LIMIT)
        fresh = [s for s in found if s not in state.proposed_slots] or found
        if not fresh:
            return _error("no_free_slots", "no free slot in the coming weeks")
        state.proposed_slots = spread(fresh, SLOTS_OFFERED)
        state.stage, state.pending_slot = st.PROPOSE, None
        effects.closing = say.offer_slots(state.proposed_slots, now)
        return {"ok": True, "slots": [self._slot(s, now) for s in state.proposed_slots]}

    async def _book(
        self, args: BookMeetingArgs, state: ConversationState, effects: TurnEffects, now: datetime
    ) -> Result:
        start = localize(args.start, self._cal)
        problem = booking_problem(self._cal, start, now=now)
        if problem is None:
            notes = args.notes or " | ".join(state.answers) or None
            booked = await self._tools.book_meeting(start=start, notes=notes)
            if booked.ok:
                state.booked_meeting_id = booked.meeting_id
                data = {"meeting_id": booked.meeting_id, "start": start.isoformat()}
                closing = say.booked(start, now, self._script)
                _end(state, effects, Action("book_meeting", data), "booked", closing)
                return {"ok": True, **self._slot(start, now), "meeting_id": booked.meeting_id}
            problem = "slot_taken" if booked.status == "conflict" else "outside_business_hours"
        state.pending_slot = None
        alternatives = await self._tools.available_slots(
            day=max(start.date(), now.date()), now=now, limit=SLOTS_OFFERED
        )
        return {
            **_error(problem, f"cannot book {start.isoformat()}"),
            "alternatives": [self._slot(s, now) for s in alternatives],
        }

    async def _callback(
        self,
        args: ScheduleCallbackArgs,
        state: ConversationState,
        effects: TurnEffects,
        now: datetime,
    ) -> Result:
        when = localize(args.when, self._cal)
        problem = callback_problem(when, now=now, calendar=self._cal)
        if problem is not None:
            return _error(problem, f"cannot call back at {when.isoformat()}")
        await self._tools.schedule_callback(when=when)
        state.callback_at = when
        action = Action("schedule_callback", {"when": when.isoformat()})
        _end(state, effects, action, "callback", say.callback_bye(when, now))
        return {"ok": True, **self._slot(when, now)}

    async def _end_call(
        self, args: EndCallArgs, state: ConversationState, effects: TurnEffects
    ) -> None:
        if args.reason == "wrong_number":
            await self._tools.mark_not_interested(reason="wrong_number")
            action = Action("mark_not_interested", {"reason": "wrong_number"})
            _end(state, effects, action, "wrong_number", say.WRONG_NUMBER_BYE)
        else:
            outcome = state.outcome or END_OUTCOMES[args.reason]
            _end(state, effects, None, outcome, say.GOODBYE)

    def _slot(self, when: datetime, now: datetime) -> Result:
        return {"start": when.isoformat(), "spoken": format_slot_hebrew(when, now)}


def _error(code: str, message: str) -> Result:
    return {"ok": False, "error": code, "message": message}


def _end(
    state: ConversationState,
    effects: TurnEffects,
    action: Action | None,
    outcome: str,
    closing: str,
) -> None:
    """Record an effect that ends the call, as RuleBrain's ``_end`` does."""
    state.stage, state.outcome = st.ENDED, outcome
    if action is not None:
        effects.actions.append(action)
        effects.intent = action.kind
    effects.intent = effects.intent or "end_call"
    effects.end_call, effects.closing = True, closing
