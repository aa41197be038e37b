"""Whole conversations through RuleBrain and the in-memory tools, text in, outcomes out."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.base import ConversationState, LeadContext, Reply
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)  # Tuesday morning
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)


@pytest.fixture
def tools() -> InMemoryBookingTools:
    return InMemoryBookingTools(calendar=CAL, clock=NOW)


@pytest.fixture
def brain(tools: InMemoryBookingTools) -> RuleBrain:
    return RuleBrain(tools=tools, calendar=CAL)


def _state() -> ConversationState:
    return ConversationState(lead=LeadContext(lead_id=7, name="דני", company="מספרת דני"))


async def _talk(brain: RuleBrain, state: ConversationState, *lines: str) -> list[Reply]:
    replies = [await brain.greet(state)]
    for line in lines:
        replies.append(await brain.respond(state, line, now=NOW))
    for reply in replies:
        print(reply.intent, "|", reply.text)
    return replies


def _kinds(reply: Reply) -> list[str]:
    return [a.kind for a in reply.actions]


async def test_books_the_agreed_slot(brain: RuleBrain, tools: InMemoryBookingTools) -> None:
    """Permission, two answers, then "בעשר" for an offered slot books exactly that slot."""
    state = _state()
    replies = await _talk(
        brain, state, "כן בטח", "אנחנו חמישה", "אממ בעיקר אני עונה בעצמי", "בעשר זה מעולה"
    )
    assert "דני" in replies[0].text
    assert "היום בעשר בבוקר" in replies[3].text
    last = replies[-1]
    assert last.end_call and _kinds(last) == ["book_meeting", "end_call"]
    assert [m.start for m in tools.meetings] == [datetime(2025, 3, 11, 10, 0, tzinfo=TZ)]
    assert tools.meetings[0].notes == "אנחנו חמישה | אממ בעיקר אני עונה בעצמי"
    assert state.outcome == "booked" and state.booked_meeting_id == 1


async def test_caller_time_is_confirmed_then_booked(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """A time the agent did not offer is read back, and booked only after "כן"."""
    state = _state()
    replies = await _talk(brain, state, "כן", "שלושה", "טלפון", "ביום ראשון בשתיים וחצי")
    assert replies[-1].text.startswith("רק לוודא: ביום ראשון בשתיים וחצי")
    assert not tools.meetings
    final = await brain.respond(state, "כן נכון", now=NOW)
    assert final.end_call
    assert [m.start for m in tools.meetings] == [datetime(2025, 3, 16, 14, 30, tzinfo=TZ)]


async def test_bare_yes_to_two_slots_asks_which(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """ "כן" to two offered slots asks which one; "השני" then books the second."""
    state = _state()
    await _talk(brain, state, "כן", "שניים", "אני")
    offered = list(state.proposed_slots)
    which = await brain.respond(state, "כן", now=NOW)
    assert which.intent == "accept_time" and not which.end_call
    await brain.respond(state, "השני", now=NOW)
    assert [m.start for m in tools.meetings] == [offered[1]]


async def test_conflict_offers_alternatives(brain: RuleBrain, tools: InMemoryBookingTools) -> None:
    """A confirmed time that is taken is not booked; other slots that day are offered."""
    taken = datetime(2025, 3, 16, 11, 0, tzinfo=TZ)
    tools.busy.append((taken, taken.replace(minute=30)))
    state = _state()
    await _talk(brain, state, "כן", "שלושה", "טלפון", "יום ראשון באחת עשרה")
    reply = await brain.respond(state, "כן", now=NOW)
    assert "נתפסה" in reply.text and not reply.end_call
    assert not tools.meetings and state.proposed_slots


async def test_opt_out_adds_do_not_call_and_ends(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """ "תוריד אותי מהרשימה" at any stage apologises, records do-not-call and hangs up."""
    state = _state()
    replies = await _talk(brain, state, "כן", "תוריד אותי מהרשימה")
    assert tools.do_not_call
    assert replies[-1].end_call and _kinds(replies[-1]) == ["add_to_do_not_call", "end_call"]


async def test_call_me_tomorrow_at_five_schedules_callback(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """ "תתקשר אליי מחר בחמש" schedules a callback at tomorrow 17:00 and ends politely."""
    state = _state()
    replies = await _talk(brain, state, "תתקשר אליי מחר בחמש")
    assert tools.callbacks == [datetime(2025, 3, 12, 17, 0, tzinfo=TZ)]
    assert replies[-1].end_call and "מחר בחמש" in replies[-1].text
    assert _kinds(replies[-1]) == ["schedule_callback", "end_call"]


async def test_busy_without_time_asks_when(brain: RuleBrain, tools: InMemoryBookingTools) -> None:
    """ "אני באמצע פגישה" gets "מתי נוח?", and the answer becomes the callback."""
    state = _state()
    replies = await _talk(brain, state, "אני באמצע פגישה", "בערב בשמונה")
    assert "מתי" in replies[1].text and not replies[1].end_call
    assert tools.callbacks == [datetime(2025, 3, 11, 20, 0, tzinfo=TZ)]


async def test_human_request_transfers(brain: RuleBrain) -> None:
    """Asking for a person sets transfer and records the transfer action."""
    state = _state()
    replies = await _talk(brain, state, "אני רוצה לדבר עם נציג")
    assert replies[-1].transfer and _kinds(replies[-1]) == ["transfer_to_human"]


async def test_unclear_twice_gives_simple_question(brain: RuleBrain) -> None:
    """First unclear answer re-asks; the second gets a plain yes/no question; the third ends."""
    state = _state()
    replies = await _talk(brain, state, "אממ", "הממ")
    assert replies[1].text.startswith("סליחה, לא שמעתי טוב")
    assert "כן או לא" in replies[2].text
    third = await brain.respond(state, "אהה", now=NOW)
    assert third.end_call


async def test_unclear_then_yes_to_simple_slot_question_books(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """At the slot stage the simple question names one slot, and "כן" books it."""
    state = _state()
    await _talk(brain, state, "כן", "שלושה", "טלפון", "אממ", "ממ")
    assert state.pending_slot is not None
    await brain.respond(state, "כן", now=NOW)
    assert len(tools.meetings) == 1


async def test_price_is_answered_and_steers_to_slots(brain: RuleBrain) -> None:
    """A price question gets the script's answer (spoken) and a slot proposal."""
    state = _state()
    replies = await _talk(brain, state, "כמה זה עולה")
    assert "מאה תשעים ותשעה שקלים" in replies[-1].text
    assert state.stage == "propose" and len(state.proposed_slots) == 2


async def test_not_interested_twice_marks_and_ends(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """One soft objection answer, then a second "no" marks the lead not interested."""
    state = _state()
    replies = await _talk(brain, state, "לא מעוניין", "לא תודה")
    assert not replies[1].end_call
    assert replies[2].end_call and tools.not_interested_reasons == ["not_interested"]


async def test_wrong_number_apologises_and_ends(brain: RuleBrain) -> None:
    """A wrong number ends the call with an apology."""
    state = _state()
    replies = await _talk(brain, state, "טעות במספר")
    assert replies[-1].end_call and "סליחה" in replies[-1].text


async def test_silence_checks_in_then_ends(brain: RuleBrain) -> None:
    """First silence asks if the line is alive; the second says goodbye and ends."""
    state = _state()
    await brain.greet(state)
    first = await brain.on_silence(state, count=1, now=NOW)
    second = await brain.on_silence(state, count=2, now=NOW)
    assert "שומעים" in first.text and not first.end_call
    assert second.end_call


async def test_silence_max_prompts_sets_how_many_check_ins_come_before_the_goodbye(
    tools: InMemoryBookingTools,
) -> None:
    """With three prompts allowed, two check-ins come before the goodbye; with one, the
    first silence ends the call."""
    patient = RuleBrain(tools=tools, calendar=CAL, silence_max_prompts=3)
    state = _state()
    await patient.greet(state)
    replies = [await patient.on_silence(state, count=n, now=NOW) for n in (1, 2, 3)]
    assert [r.end_call for r in replies] == [False, False, True]
    assert state.outcome == "no_answer"
    brief = RuleBrain(tools=tools, calendar=CAL, silence_max_prompts=1)
    state = _state()
    await brief.greet(state)
    assert (await brief.on_silence(state, count=1, now=NOW)).end_call


async def test_dtmf_nine_opts_out(brain: RuleBrain, tools: InMemoryBookingTools) -> None:
    """Key 9 is the opt-out key."""
    state = _state()
    await brain.greet(state)
    reply = await brain.on_dtmf(state, "9", now=NOW)
    assert reply.end_call and tools.do_not_call


async def test_state_round_trips_through_dict(brain: RuleBrain) -> None:
    """Mid-call state survives to_dict/from_dict unchanged (as stored in Redis)."""
    state = _state()
    await _talk(brain, state, "כן", "שלושה", "טלפון")
    assert ConversationState.from_dict(state.to_dict()) == state


async def test_replies_contain_no_digits(brain: RuleBrain) -> None:
    """Every reply is already written for speech: no digits or currency signs."""
    state = _state()
    replies = await _talk(brain, state, "מי זה", "כמה זה עולה", "תשלחי לי בוואטסאפ")
    for reply in replies:
        assert not any(ch.isdigit() for ch in reply.text) and "₪" not in reply.text


async def test_no_meeting_on_yom_kippur_in_a_text_conversation() -> None:
    """On Yom Kippur eve the brain offers no slot on Yom Kippur or after 13:00, refuses one
    asked for on Yom Kippur, and books the day after."""
    now = datetime(2027, 10, 10, 11, 0, tzinfo=TZ)  # Sunday, eve of Yom Kippur 5788
    tools = InMemoryBookingTools(calendar=CAL, clock=now)
    brain = RuleBrain(tools=tools, calendar=CAL)
    state = _state()
    await brain.greet(state)
    for line in ("כן בטח", "אנחנו חמישה", "אני עונה בעצמי"):
        await brain.respond(state, line, now=now)
    offered = list(state.proposed_slots)
    assert offered and all(s.date().isoformat() != "2027-10-11" for s in offered)
    assert all(s.hour < 13 for s in offered if s.date() == now.date())
    await brain.respond(state, "מחר בעשר", now=now)
    refused = await brain.respond(state, "כן", now=now)
    assert tools.meetings == [] and not refused.end_call
    assert all(s.date().isoformat() == "2027-10-12" for s in state.proposed_slots)
    booked = await brain.respond(state, "הראשון", now=now)
    assert booked.end_call and state.outcome == "booked"
    assert [m.start for m in tools.meetings] == [datetime(2027, 10, 12, 9, 30, tzinfo=TZ)]
