"""Scripted conversations through RuleBrain for every branch of issue #12's turn-aware intents.

Text in, outcomes out, with the in-memory tools: hello after the greeting, a meeting
request at a time in any stage, "didn't hear", questions about the offer, price,
callback, opt-out, wrong number, not interested and goodbyes near the end.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain import state as st
from voicebot.brain.base import ConversationState, LeadContext, Reply
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)  # Tuesday morning
TOMORROW_10 = datetime(2025, 3, 12, 10, 0, tzinfo=TZ)
CAL = BusinessCalendar(
    tz=TZ,
    business_days=frozenset({6, 0, 1, 2, 3}),
    day_start=time(9, 0),
    day_end=time(18, 0),
    meeting_min=30,
)
SCRIPT = AgentScript.default()


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


@pytest.mark.parametrize("hello", ["שלום", "הלו", "כן, הלו", "אהלן מה נשמע"])
async def test_hello_after_greeting_is_answered_and_the_pitch_goes_on(
    brain: RuleBrain, hello: str
) -> None:
    """ "שלום" right after the greeting gets a hello back and the pitch, never a goodbye."""
    state = _state()
    replies = await _talk(brain, state, hello)
    assert replies[-1].intent == "greeting" and not replies[-1].end_call
    assert replies[-1].text.startswith("שלום!")
    assert SCRIPT.qualifying_questions[0] in replies[-1].text
    assert state.stage == st.QUALIFY


async def test_hello_then_meeting_tomorrow_at_ten_books_it(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """The issue's call: "שלום", then "אפשר לקבוע פגישה מחר בעשר" books tomorrow 10:00."""
    state = _state()
    replies = await _talk(brain, state, "שלום", "אפשר לקבוע פגישה מחר בעשר")
    last = replies[-1]
    assert last.intent == "book_meeting" and last.end_call
    assert _kinds(last) == ["book_meeting", "end_call"]
    assert "מחר בעשר" in last.text
    assert [m.start for m in tools.meetings] == [TOMORROW_10]
    assert not tools.callbacks and state.outcome == "booked"


@pytest.mark.parametrize(
    "lines",
    [
        ("אפשר לקבוע פגישה מחר בעשר",),
        ("כן", "תקבעי לי פגישה מחר בעשר"),
        ("כן", "לא מעוניין", "טוב בוא נקבע מחר בעשר"),
        ("אני עסוק עכשיו", "אז תקבעי לי פגישה מחר בעשר"),
    ],
)
async def test_meeting_request_with_a_time_books_in_any_stage(
    brain: RuleBrain, tools: InMemoryBookingTools, lines: tuple[str, ...]
) -> None:
    """A request to meet at a time books it at permission, mid-questions, after an objection
    or when the agent asked when to call back."""
    state = _state()
    replies = await _talk(brain, state, *lines)
    assert replies[-1].end_call and state.outcome == "booked"
    assert [m.start for m in tools.meetings] == [TOMORROW_10]


async def test_meeting_request_while_slots_are_offered_is_read_back_then_booked(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """With other slots on the table, "בוא נקבע מחר בעשר" is read back and booked on "כן"."""
    state = _state()
    replies = await _talk(brain, state, "כן", "בוא נקבע פגישה", "לא, בוא נקבע מחר בעשר")
    assert replies[-1].text.startswith("רק לוודא: מחר בעשר")
    final = await brain.respond(state, "כן", now=NOW)
    assert final.end_call and [m.start for m in tools.meetings] == [TOMORROW_10]


async def test_meeting_request_at_a_taken_time_offers_that_days_alternatives(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """Tomorrow 10:00 taken: the agent says so, offers other times that day, books the pick."""
    await tools.book_meeting(start=TOMORROW_10, notes=None)
    state = _state()
    replies = await _talk(brain, state, "אפשר לקבוע פגישה מחר בעשר")
    assert not replies[-1].end_call and state.stage == st.PROPOSE
    assert replies[-1].text.startswith("אופס")
    assert all(s.date() == TOMORROW_10.date() for s in state.proposed_slots)
    final = await brain.respond(state, "הראשון", now=NOW)
    assert final.end_call and tools.meetings[-1].start == state.proposed_slots[0]


async def test_meeting_request_outside_hours_offers_alternatives(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """Tomorrow at 20:00 is after hours: nothing is booked, slots that day are offered."""
    state = _state()
    replies = await _talk(brain, state, "בוא נקבע פגישה מחר בשמונה בערב")
    assert not tools.meetings and state.stage == st.PROPOSE
    assert replies[-1].text.startswith("בשעה הזאת לא קובעים")


async def test_meeting_request_without_a_time_offers_slots(brain: RuleBrain) -> None:
    """ "בוא נקבע פגישה" during the pitch goes straight to proposing slots."""
    state = _state()
    replies = await _talk(brain, state, "כן", "בוא נקבע פגישה")
    assert replies[-1].intent == "book_meeting" and state.stage == st.PROPOSE
    assert len(state.proposed_slots) == 2


async def test_only_call_me_back_schedules_a_callback(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """ "תתקשרו אליי מחר בעשר" schedules a callback at that time and books nothing."""
    state = _state()
    replies = await _talk(brain, state, "תתקשרו אליי מחר בעשר")
    assert _kinds(replies[-1]) == ["schedule_callback", "end_call"]
    assert tools.callbacks == [TOMORROW_10] and not tools.meetings


@pytest.mark.parametrize("didnt_hear", ["לא שמעתי", "סליחה לא הבנתי", "מה?"])
async def test_didnt_hear_repeats_the_question_and_is_never_no(
    brain: RuleBrain, didnt_hear: str
) -> None:
    """After the greeting, "לא שמעתי" repeats who we are and the question; "כן" then goes on."""
    state = _state()
    replies = await _talk(brain, state, didnt_hear)
    assert replies[-1].intent == "repeat" and not replies[-1].end_call
    assert state.stage == st.PERMISSION
    assert replies[-1].text.endswith("זה זמן טוב לדבר דקה?")
    nxt = await brain.respond(state, "כן", now=NOW)
    assert state.stage == st.QUALIFY and SCRIPT.qualifying_questions[0] in nxt.text


async def test_didnt_hear_during_slots_repeats_the_slots(brain: RuleBrain) -> None:
    """ "מה אמרת?" after a slot offer names the same slots again."""
    state = _state()
    await _talk(brain, state, "כן", "בוא נקבע פגישה")
    offered = list(state.proposed_slots)
    again = await brain.respond(state, "מה אמרת?", now=NOW)
    assert again.intent == "repeat" and state.proposed_slots == offered
    assert "מה מתאים יותר?" in again.text


async def test_three_repeats_end_the_call_as_a_bad_line(brain: RuleBrain) -> None:
    """A caller who cannot hear three times running gets a polite end, not an endless loop."""
    state = _state()
    replies = await _talk(brain, state, "לא שמעתי", "מה?", "לא שומע אותך")
    assert replies[-1].end_call and state.outcome == "unclear"


@pytest.mark.parametrize("question", ["מה בדיוק אתם מציעים", "אוקיי תסביר לי"])
async def test_question_about_the_offer_is_answered_with_the_offer(
    brain: RuleBrain, question: str
) -> None:
    """Mid-questions, "מה בדיוק אתם מציעים" explains the offer and asks the same question again."""
    state = _state()
    await _talk(brain, state, "כן")
    reply = await brain.respond(state, question, now=NOW)
    assert reply.intent == "interested"
    assert SCRIPT.offer.split()[0] in reply.text
    assert reply.text.endswith(SCRIPT.qualifying_questions[0])
    assert state.qualify_index == 0 and not state.answers


async def test_price_question_answers_and_offers_slots(brain: RuleBrain) -> None:
    """ "כמה זה עולה" is answered from the script and steers to meeting slots."""
    state = _state()
    replies = await _talk(brain, state, "כן", "רגע כמה זה עולה")
    assert replies[-1].intent == "price_question" and state.stage == st.PROPOSE


async def test_opt_out_is_honoured_at_once(brain: RuleBrain, tools: InMemoryBookingTools) -> None:
    """ "תוריד אותי מהרשימה" adds the number to do-not-call and ends the call."""
    state = _state()
    replies = await _talk(brain, state, "שלום", "תוריד אותי מהרשימה")
    assert _kinds(replies[-1]) == ["add_to_do_not_call", "end_call"] and tools.do_not_call


async def test_wrong_number_apologises(brain: RuleBrain, tools: InMemoryBookingTools) -> None:
    """ "טעות במספר" marks the lead and ends politely."""
    state = _state()
    replies = await _talk(brain, state, "הלו", "טעות במספר")
    assert state.outcome == "wrong_number" and replies[-1].end_call
    assert tools.not_interested_reasons == ["wrong_number"]


async def test_not_interested_gets_one_answer_then_ends(
    brain: RuleBrain, tools: InMemoryBookingTools
) -> None:
    """ "לא מעוניין" is answered once; a second "לא" ends the call as not interested."""
    state = _state()
    replies = await _talk(brain, state, "כן", "לא מעוניין", "לא")
    assert state.outcome == "not_interested" and replies[-1].end_call
    assert tools.not_interested_reasons == ["not_interested"]


@pytest.mark.parametrize("bye", ["שלום שלום", "יאללה ביי", "ביי"])
async def test_goodbye_near_the_end_ends_the_call(brain: RuleBrain, bye: str) -> None:
    """After the objection answer, "שלום שלום" / "יאללה ביי" is a goodbye that ends the call."""
    state = _state()
    await _talk(brain, state, "כן", "לא מעוניין")
    assert state.stage == st.OBJECTION
    reply = await brain.respond(state, bye, now=NOW)
    assert reply.intent == "goodbye" and reply.end_call


async def test_clear_goodbye_mid_questions_ends_the_call(brain: RuleBrain) -> None:
    """ "יאללה ביי" in the middle of the questions ends the call instead of being an answer."""
    state = _state()
    replies = await _talk(brain, state, "כן", "יאללה ביי")
    assert replies[-1].end_call and not state.answers


async def test_hello_later_in_the_call_asks_to_repeat(brain: RuleBrain) -> None:
    """ "הלו?" mid-questions means "are you there?": the question is said again."""
    state = _state()
    await _talk(brain, state, "כן")
    reply = await brain.respond(state, "הלו הלו", now=NOW)
    assert reply.intent == "repeat" and reply.text.endswith(SCRIPT.qualifying_questions[0])


def test_tomorrow_ten_is_a_business_slot() -> None:
    """Guard for this module: tomorrow 10:00 is inside the calendar these tests use."""
    assert (NOW + timedelta(days=1)).weekday() in CAL.business_days


@pytest.mark.parametrize("hold", ["רגע", "שנייה אחת", "אממ רגע רגע", "רק שנייה בבקשה"])
async def test_hold_on_waits_without_asking_again(brain: RuleBrain, hold: str) -> None:
    """A bare "רגע"/"שנייה" while the agent asks its questions is answered with a short wait;
    the question is not counted as answered nor the turn as unclear, so the next answer is
    recorded for the same question."""
    state = _state()
    await _talk(brain, state, "כן")
    index = state.qualify_index
    reply = await brain.respond(state, hold, now=NOW)
    assert reply.intent == "hold" and not reply.end_call
    assert SCRIPT.qualifying_questions[index] not in reply.text
    assert state.stage == st.QUALIFY and state.qualify_index == index
    assert state.unclear_count == 0 and state.answers == []
    await brain.respond(state, "אנחנו חמישה עובדים", now=NOW)
    assert state.answers == ["אנחנו חמישה עובדים"] and state.qualify_index == index + 1


async def test_second_with_slots_on_the_table_is_not_a_hold(brain: RuleBrain) -> None:
    """With slots offered a bare "שנייה" may be the second one (recognisers drop the "ה"), so
    it is classified, not taken for a hold; "רגע" still waits."""
    state = _state()
    await _talk(brain, state, "כן")
    state.qualify_index = len(SCRIPT.qualifying_questions)
    await brain.respond(state, "אנחנו חמישה", now=NOW)
    assert state.stage == st.PROPOSE
    assert (await brain.respond(state, "רגע", now=NOW)).intent == "hold"
    assert (await brain.respond(state, "שנייה", now=NOW)).intent != "hold"
