"""RuleBrain: the deterministic Hebrew sales agent, a state machine over caller intents.

Owns the conversation policy: greeting → permission → pitch → qualifying questions →
slot proposal → confirmation and booking → goodbye, with opt-out, wrong number,
human transfer, price and detail requests, callbacks and unclear speech handled at
every stage. Its only I/O is through :class:`~voicebot.brain.base.BookingTools`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import date, datetime, time, timedelta

from voicebot.brain import phrases as say
from voicebot.brain import state as st
from voicebot.brain.base import (
    Action,
    BookingTools,
    ChatTurn,
    ConversationState,
    Reply,
    ReplyEvent,
    stream_of,
)
from voicebot.brain.intents import IntentResult, asks_about_offer, detect_intent, holds_on
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar, is_bookable, spread
from voicebot.brain.speech_text import to_spoken
from voicebot.brain.timeparse import TimeParse, at
from voicebot.scheduling.calendars import closed_reason, day_hours

SLOTS_OFFERED = 2  # slots named in one proposal
SLOT_FETCH_LIMIT = 12  # candidates fetched to choose a spread from
MAX_REJECTED_ROUNDS = 2  # after this many refused proposals, ask the caller for a time
SIMPLE_QUESTION_AT = 2  # unclear answers before the yes/no question
GIVE_UP_AT = 3  # unclear answers before ending the call
DEFAULT_CALLBACK_CLOCK = time(10, 0)
CALLBACK_SEARCH_DAYS = 14  # how far ahead a callback on a closed day moves to an open one
SILENCE_MAX_PROMPTS = 2  # unanswered prompts (last reply, check-ins) before the goodbye
SILENCE_INTENT = "silence"  # the intent of a check-in and of the silence goodbye
DTMF_INTENTS = {"1": "yes", "2": "no", "0": "ask_human", "9": "remove_me"}
FAREWELL_SCORE = 3.0  # a goodbye this clear ends the call even mid-questions ("ביי", "להתראות")
_OPENING = frozenset({st.GREETING, st.PERMISSION})
_SECOND = ("שני", "שנייה", "השני", "השנייה", "השניה", "אחרון", "האחרון", "האחרונה")


class RuleBrain:
    """A :class:`~voicebot.brain.base.Brain` for one call, bound to one lead's tools."""

    def __init__(
        self,
        *,
        tools: BookingTools,
        calendar: BusinessCalendar,
        script: AgentScript | None = None,
        silence_max_prompts: int = SILENCE_MAX_PROMPTS,
    ) -> None:
        self._tools = tools
        self._cal = calendar
        self._script = script or AgentScript.default()
        self._silence_max_prompts = silence_max_prompts

    # Brain protocol.

    async def greet(self, state: ConversationState) -> Reply:
        state.stage = st.PERMISSION
        name = state.lead.name if state.lead else None
        return self._reply(state, self._script.render_greeting(name), "greeting")

    async def respond(self, state: ConversationState, user_text: str, *, now: datetime) -> Reply:
        state.history.append(ChatTurn(role="user", content=user_text))
        slots = state.stage in (st.PROPOSE, st.CONFIRM)
        if state.stage != st.ENDED and holds_on(user_text, slots=slots):
            # "רגע", "שנייה": a short yes and wait; nothing is asked again or counted unclear.
            return self._reply(state, say.HOLD_ON, "hold")
        result = detect_intent(
            user_text,
            now=now,
            tz=self._cal.tz,
            expecting=st.EXPECTING.get(state.stage, "none"),
            moment=st.MOMENT.get(state.stage, "pitch"),
            business_hours=(self._cal.day_start, self._cal.day_end),
            business_days=self._cal.business_days,
        )
        return await self._handle(state, result, now)

    async def respond_stream(
        self, state: ConversationState, user_text: str, *, now: datetime
    ) -> AsyncGenerator[ReplyEvent, None]:
        async for event in stream_of(await self.respond(state, user_text, now=now)):
            yield event

    async def on_dtmf(self, state: ConversationState, digit: str, *, now: datetime) -> Reply:
        intent = DTMF_INTENTS.get(digit, "unclear")
        if state.stage in (st.PROPOSE, st.CONFIRM):
            intent = {"yes": "accept_time", "no": "reject_time"}.get(intent, intent)
        return await self._handle(state, IntentResult(intent, 1.0, None, digit), now)

    async def on_silence(self, state: ConversationState, *, count: int, now: datetime) -> Reply:
        """``count`` silences in a row: a check-in, until ``silence_max_prompts`` prompts
        went unanswered; then the goodbye that ends the call (outcome ``no_answer``)."""
        if count < self._silence_max_prompts:
            return self._reply(state, say.CHECK_IN, SILENCE_INTENT)
        return self._end(state, say.SILENCE_BYE, SILENCE_INTENT, outcome="no_answer")

    # Dispatch.

    async def _handle(self, state: ConversationState, result: IntentResult, now: datetime) -> Reply:
        intent = result.intent
        if state.stage == st.ENDED:
            return self._end(state, say.GOODBYE, intent, outcome=state.outcome)
        if intent == "remove_me":
            await self._tools.add_to_do_not_call()
            return self._end(
                state, say.DNC_BYE, intent, Action("add_to_do_not_call", {}), outcome="do_not_call"
            )
        if intent == "wrong_number":
            await self._tools.mark_not_interested(reason="wrong_number")
            action = Action("mark_not_interested", {"reason": "wrong_number"})
            return self._end(state, say.WRONG_NUMBER_BYE, intent, action, outcome="wrong_number")
        if intent == "ask_human":
            state.stage, state.outcome = st.ENDED, "transferred"
            return self._reply(
                state, say.TRANSFER, intent, (Action("transfer_to_human", {}),), transfer=True
            )
        if intent == "repeat" or (intent == "greeting" and state.stage not in _OPENING):
            return await self._repeat(state, now)
        if intent == "unclear" and not (state.stage == st.QUALIFY and result.text):
            return await self._unclear(state, now)
        state.unclear_count = 0
        if intent == "book_meeting" or (
            intent == "propose_time" and state.stage == st.OBJECTION and result.time is not None
        ):
            return await self._meeting_request(state, result, now)
        if intent == "goodbye" and (state.stage != st.QUALIFY or result.score >= FAREWELL_SCORE):
            return self._end(state, say.GOODBYE, intent, outcome=state.outcome or "hung_up")
        if intent in ("who_is_this", "number_source"):
            lead_in = say.introduce(self._script)
            if intent == "number_source":
                lead_in = self._script.objections.number_source
            return self._reply(state, f"{lead_in} {await self._question(state, now)}", intent)
        if intent in ("price_question", "send_details"):
            answer = self._script.price_answer()
            if intent == "send_details":
                answer = self._script.objections.send_email
            return await self._propose(state, now, intent, lead_in=answer)
        if intent == "busy_call_later":
            return await self._busy(state, result, now)
        if intent == "not_interested" or (intent == "no" and state.stage == st.OBJECTION):
            return await self._not_interested(state, intent)
        return await self._by_stage(state, result, now)

    async def _by_stage(
        self, state: ConversationState, result: IntentResult, now: datetime
    ) -> Reply:
        intent, stage = result.intent, state.stage
        if stage == st.QUALIFY and intent == "interested" and asks_about_offer(result.text):
            # "מה בדיוק אתם מציעים": explain, then ask the same question again.
            question = self._script.qualifying_questions[state.qualify_index]
            return self._reply(state, f"{self._script.offer_text()} {question}", intent)
        if stage == st.QUALIFY:
            said = [t.content for t in state.history if t.role == "user"]
            state.answers.append(said[-1] if said else result.text)
            state.qualify_index += 1
            return await self._next_question(state, now, "answer")
        if stage in (st.PERMISSION, st.GREETING):
            if intent == "no":
                state.stage = st.CALLBACK
                return self._reply(
                    state, f"{self._script.objections.busy} {say.ASK_CALLBACK_TIME}", intent
                )
            if intent == "propose_time" and result.time is not None:
                return await self._callback(state, result.time, now, intent)
            state.stage, state.qualify_index = st.QUALIFY, 0
            opener = say.HELLO_BACK if intent == "greeting" else "מעולה,"
            lead_in = say.pitch(self._script, opener=opener)
            return await self._next_question(state, now, intent, lead_in=lead_in)
        if stage == st.OBJECTION:
            return await self._propose(state, now, intent)
        if stage == st.CALLBACK:
            if result.time is not None:
                return await self._callback(state, result.time, now, intent)
            if intent in ("yes", "accept_time") and state.pending_slot is not None:
                return await self._callback(state, _instant(state.pending_slot), now, intent)
            return await self._unclear(state, now)
        return await self._slot_answer(state, result, now)

    # Stage steps.

    async def _next_question(
        self, state: ConversationState, now: datetime, intent: str, *, lead_in: str = ""
    ) -> Reply:
        questions = self._script.qualifying_questions
        if state.qualify_index < len(questions):
            state.stage = st.QUALIFY
            return self._reply(state, f"{lead_in} {questions[state.qualify_index]}".strip(), intent)
        return await self._propose(state, now, intent, lead_in=lead_in)

    async def _propose(
        self,
        state: ConversationState,
        now: datetime,
        intent: str,
        *,
        lead_in: str = "",
        within: TimeParse | None = None,
        note_none_inside: bool = True,
    ) -> Reply:
        day = within.start.date() if within is not None else None
        closed = self._closed_day(within)
        if closed is not None:
            # Shabbat, a holiday, a day off: say so, then the nearest open slots.
            lead_in, note_none_inside = f"{lead_in} {closed}".strip(), False
        candidates = await self._tools.available_slots(day=day, now=now, limit=SLOT_FETCH_LIMIT)
        fresh = [s for s in candidates if s not in state.proposed_slots]
        if within is not None:
            inside = [s for s in fresh if within.start <= s < within.end]
            if not inside and fresh and note_none_inside:
                lead_in = f"{lead_in} {say.NONE_IN_RANGE}"
            fresh = inside or fresh
        if not fresh:
            return self._end(state, f"{lead_in} {say.NO_SLOTS}".strip(), intent, outcome="no_slots")
        state.stage = st.PROPOSE
        state.proposed_slots = spread(fresh, SLOTS_OFFERED)
        return self._reply(
            state, f"{lead_in} {say.offer_slots(state.proposed_slots, now)}".strip(), intent
        )

    async def _slot_answer(
        self, state: ConversationState, result: IntentResult, now: datetime
    ) -> Reply:
        intent, when = result.intent, result.time
        if intent == "accept_time" and when is not None and state.stage == st.PROPOSE:
            chosen = _chosen_slot(state.proposed_slots, result.text)
            if chosen is not None and not _describes(when, chosen, now):
                # "ראשון בבוקר", "הראשון בחמש": a day or hour said with the pick that is
                # not the slot's own is the time asked for, never the slot booked silently.
                intent = "propose_time"
        if intent == "propose_time" and when is not None and when.past:
            # "אתמול בעשר": never book or confirm a time behind us; the nearest ones instead.
            state.pending_slot = None
            return await self._propose(state, now, intent, lead_in=say.TIME_PASSED)
        if intent == "propose_time" and when is not None:
            if when.is_instant:
                if when.start in state.proposed_slots:
                    return await self._book(state, when.start, now, intent)
                if not is_bookable(self._cal, when.start, now=now):
                    # Never "רק לוודא" a time that cannot be booked: answer it now.
                    state.pending_slot = None
                    day = self._day_of(when.start)
                    lead_in = "" if self._closed_day(day) else say.OUTSIDE_HOURS
                    return await self._propose(state, now, intent, lead_in=lead_in, within=day)
                state.stage, state.pending_slot = st.CONFIRM, when.start
                return self._reply(state, say.confirm_slot(when.start, now), intent)
            return await self._propose(state, now, intent, within=when)
        if intent in ("accept_time", "yes", "interested"):
            if state.stage == st.CONFIRM and state.pending_slot is not None:
                return await self._book(state, state.pending_slot, now, intent)
            chosen = _chosen_slot(state.proposed_slots, result.text)
            if chosen is not None:
                return await self._book(state, chosen, now, intent)
            return self._reply(state, say.which_slot(state.proposed_slots, now), intent)
        if intent in ("reject_time", "no"):
            state.rejected_rounds += 1
            state.pending_slot = None
            if state.rejected_rounds >= MAX_REJECTED_ROUNDS:
                state.stage = st.PROPOSE
                return self._reply(state, say.ASK_OPEN_TIME, intent)
            return await self._propose(state, now, intent, lead_in="אין בעיה.")
        return self._reply(state, await self._question(state, now), intent)

    async def _book(
        self, state: ConversationState, start: datetime, now: datetime, intent: str
    ) -> Reply:
        notes = " | ".join(state.answers) or None
        result = await self._tools.book_meeting(start=start, notes=notes)
        if result.ok:
            state.booked_meeting_id = result.meeting_id
            action = Action(
                "book_meeting", {"meeting_id": result.meeting_id, "start": start.isoformat()}
            )
            return self._end(
                state, say.booked(start, now, self._script), intent, action, outcome="booked"
            )
        state.pending_slot = None
        within = self._day_of(start)
        if result.status != "conflict" and self._closed_day(within) is not None:
            # Shabbat, a holiday, a day off: _propose says so and offers the nearest slots.
            return await self._propose(state, now, intent, within=within)
        lead_in = say.CONFLICT if result.status == "conflict" else say.OUTSIDE_HOURS
        return await self._propose(state, now, intent, lead_in=lead_in, within=within)

    async def _meeting_request(
        self, state: ConversationState, result: IntentResult, now: datetime
    ) -> Reply:
        """The caller asked to meet: book the time named if it is free, else offer slots near it."""
        when = result.time
        if when is not None and when.past:
            return await self._propose(state, now, result.intent, lead_in=say.TIME_PASSED)
        if when is not None and when.is_instant:
            return await self._book(state, when.start, now, result.intent)
        return await self._propose(state, now, result.intent, lead_in=say.GLAD_TO_BOOK, within=when)

    async def _repeat(self, state: ConversationState, now: datetime) -> Reply:
        """Say the last question again; a line this bad for this long ends the call."""
        state.unclear_count += 1
        if state.unclear_count >= GIVE_UP_AT:
            return self._end(state, say.LINE_UNCLEAR_BYE, "repeat", outcome="unclear")
        question = await self._question(state, now)
        if state.stage in _OPENING:
            question = f"{say.introduce(self._script)} {question}"
        return self._reply(state, f"{say.REPEAT} {question}", "repeat")

    async def _busy(self, state: ConversationState, result: IntentResult, now: datetime) -> Reply:
        if result.time is not None:
            return await self._callback(state, result.time, now, result.intent)
        state.stage = st.CALLBACK
        return self._reply(
            state, f"{self._script.objections.busy} {say.ASK_CALLBACK_TIME}", result.intent
        )

    async def _callback(
        self, state: ConversationState, when: TimeParse, now: datetime, intent: str
    ) -> Reply:
        if when.past:
            state.stage = st.CALLBACK
            return self._reply(state, f"{say.TIME_PASSED} {say.ASK_CALLBACK_AGAIN}", intent)
        asked = when.start if when.is_instant else max(when.start, now + timedelta(hours=1))
        moment = self._calling_time(asked)
        await self._tools.schedule_callback(when=moment)
        state.callback_at = moment
        action = Action("schedule_callback", {"when": moment.isoformat()})
        why = ""
        if moment != asked:
            asked_day = asked.astimezone(self._cal.tz).date()
            closed = day_hours(self._cal.calendar, asked_day) is None
            why = (
                say.no_calls_on(closed_reason(self._cal.calendar, asked_day), asked_day)
                if closed
                else say.NO_CALLS_THEN
            )
        bye = say.callback_bye(moment, now, moved_because=why)
        return self._end(state, bye, intent, action, outcome="callback")

    def _calling_time(self, asked: datetime) -> datetime:
        """The first moment from ``asked`` when calls are made: never on Shabbat or a holiday,
        before the day starts or after the calendar's hours (a Friday afternoon), so the
        time promised is the time the dialer will call."""
        tz = self._cal.tz
        earliest = asked.astimezone(tz)
        day = earliest.date()
        for _ in range(CALLBACK_SEARCH_DAYS):
            hours = day_hours(self._cal.calendar, day)
            if hours is not None:
                opens = at(day, max(self._cal.day_start, hours.start), tz)
                candidate = max(earliest, opens)
                if hours.end is None or candidate <= at(day, hours.end, tz):
                    return candidate
            day += timedelta(days=1)
        return asked

    def _day_of(self, moment: datetime) -> TimeParse:
        """The business day of ``moment`` (local), as a span to propose slots within."""
        day = moment.astimezone(self._cal.tz).date()
        tz = self._cal.tz
        return TimeParse(at(day, self._cal.day_start, tz), at(day, self._cal.day_end, tz), "day")

    def _closed_day(self, within: TimeParse | None) -> str | None:
        """What to say when ``within`` is one local day on which no meeting can be
        ("ביום כיפור לא קובעים פגישות."), None when it is open or spans several days."""
        if within is None:
            return None
        tz = self._cal.tz
        day: date = within.start.astimezone(tz).date()
        if within.end.astimezone(tz).date() != day or self._cal.day_window(day) is not None:
            return None
        return say.closed_day(closed_reason(self._cal.calendar, day), day)

    async def _not_interested(self, state: ConversationState, intent: str) -> Reply:
        if state.objection_count == 0 and state.stage in st.PERSUADABLE:
            state.objection_count, state.stage = 1, st.OBJECTION
            return self._reply(
                state,
                f"{self._script.objections.not_interested} {say.ask_meeting(self._script)}",
                intent,
            )
        await self._tools.mark_not_interested(reason="not_interested")
        action = Action("mark_not_interested", {"reason": "not_interested"})
        return self._end(state, say.NOT_INTERESTED_BYE, intent, action, outcome="not_interested")

    async def _unclear(self, state: ConversationState, now: datetime) -> Reply:
        state.unclear_count += 1
        if state.unclear_count >= GIVE_UP_AT:
            return self._end(state, say.LINE_UNCLEAR_BYE, "unclear", outcome="unclear")
        if state.unclear_count < SIMPLE_QUESTION_AT:
            return self._reply(
                state, f"{say.DIDNT_HEAR} {await self._question(state, now)}", "unclear"
            )
        return self._reply(state, self._simple_question(state, now), "unclear")

    async def _question(self, state: ConversationState, now: datetime) -> str:
        """The question the current stage is waiting on, to ask again."""
        if state.stage == st.QUALIFY:
            return self._script.qualifying_questions[state.qualify_index]
        if state.stage == st.PROPOSE:
            return (
                say.offer_slots(state.proposed_slots, now)
                if state.proposed_slots
                else say.ASK_OPEN_TIME
            )
        if state.stage == st.CONFIRM and state.pending_slot is not None:
            return say.confirm_slot(state.pending_slot, now)
        if state.stage == st.CALLBACK:
            return say.ASK_CALLBACK_AGAIN
        if state.stage == st.OBJECTION:
            return say.ask_meeting(self._script)
        return say.ASK_PERMISSION

    def _simple_question(self, state: ConversationState, now: datetime) -> str:
        """A yes/no version of the stage's question; a "yes" to it completes the step."""
        if state.stage in (st.PROPOSE, st.CONFIRM):
            first = state.pending_slot or (
                state.proposed_slots[0] if state.proposed_slots else None
            )
            if first is not None:
                state.stage, state.pending_slot = st.CONFIRM, first
                return say.simple_slot(first, now)
            return say.simple_meeting(self._script)
        if state.stage == st.CALLBACK:
            day = now.astimezone(self._cal.tz).date() + timedelta(days=1)
            for _ in range(CALLBACK_SEARCH_DAYS):
                # Never offer a callback on Shabbat or a holiday ("מחר" on Yom Kippur eve).
                if day.weekday() in self._cal.business_days and (
                    day_hours(self._cal.calendar, day) is not None
                ):
                    break
                day += timedelta(days=1)
            state.pending_slot = self._calling_time(at(day, DEFAULT_CALLBACK_CLOCK, self._cal.tz))
            return say.simple_callback(state.pending_slot, now)
        if state.stage == st.OBJECTION:
            return say.simple_meeting(self._script)
        return say.SIMPLE_PERMISSION

    # Replies.

    def _reply(
        self,
        state: ConversationState,
        text: str,
        intent: str,
        actions: tuple[Action, ...] = (),
        *,
        end_call: bool = False,
        transfer: bool = False,
    ) -> Reply:
        spoken = to_spoken(text)
        state.history.append(ChatTurn(role="assistant", content=spoken))
        return Reply(
            text=spoken, intent=intent, actions=actions, end_call=end_call, transfer=transfer
        )

    def _end(
        self,
        state: ConversationState,
        text: str,
        intent: str,
        *actions: Action,
        outcome: str | None,
    ) -> Reply:
        state.stage, state.outcome = st.ENDED, outcome
        end = Action("end_call", {"outcome": outcome})
        return self._reply(state, text, intent, (*actions, end), end_call=True)


def _instant(moment: datetime) -> TimeParse:
    return TimeParse(moment, moment, "instant")


def _describes(when: TimeParse, slot: datetime, now: datetime) -> bool:
    """Whether the time said with a pick fits the slot picked: its hours hold the slot's
    time of day, and a day other than today, when said, is the slot's day."""
    said_day = when.start.astimezone(slot.tzinfo).date()
    if said_day != now.astimezone(slot.tzinfo).date() and said_day != slot.date():
        return False
    shift = slot.date() - said_day
    return when.start + shift <= slot <= when.end + shift


def _chosen_slot(slots: list[datetime], canonical: str) -> datetime | None:
    """The proposed slot the caller picked by position, or the only one offered."""
    words = canonical.split()
    if len(slots) >= 2 and any(w in _SECOND for w in words):
        return slots[1]
    if slots and any(w.endswith(("ראשון", "ראשונה", "ראשונ", "ראשונה")) for w in words):
        return slots[0]
    return slots[0] if len(slots) == 1 else None
