"""A partial campaign script never borrows the built-in product's words; a meeting asked
for on a closed day is answered in plain Hebrew."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from voicebot.brain.base import ConversationState, LeadContext, Reply
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.script import AgentScript
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
YOGA = AgentScript(
    agent_name="מיכל",
    company="סטודיו שלווה",
    offer="שיעור יוגה ראשון חינם, בסטודיו ליד הבית.",
    meeting_purpose="שיעור ניסיון בסטודיו",
)
BUILT_IN_WORDS = ("ליד פלוס", "נועה", "199", "מאה תשעים", "יועץ", "וואטסאפ", "תורים")


@pytest.fixture
def tools() -> InMemoryBookingTools:
    return InMemoryBookingTools(calendar=CAL, clock=NOW)


async def _talk(brain: RuleBrain, *lines: str) -> list[Reply]:
    state = ConversationState(lead=LeadContext(lead_id=7, name="דני", company=None))
    replies = [await brain.greet(state)]
    for line in lines:
        replies.append(await brain.respond(state, line, now=NOW))
    for reply in replies:
        print(reply.intent, "|", reply.text)
    return replies


@pytest.mark.parametrize(
    "lines",
    [
        ("שלום", "לא מעניין", "אממ", "אממ"),  # objection, then its yes/no version
        ("הלו מי זה", "כמה זה עולה", "לא מתאים לי שום דבר", "לא"),
        ("כן", "מאיפה יש לכם את המספר שלי", "תשלחו לי פרטים במייל"),
        ("כן?", "לא שמעתי", "לא עכשיו אני עסוק"),
    ],
)
async def test_partial_script_never_speaks_the_built_in_product(
    tools: InMemoryBookingTools, lines: tuple[str, ...]
) -> None:
    """With a yoga studio's name, company, offer and meeting, no reply names the built-in
    product, its price or its consultant ("יועץ"): the meeting asked for is the script's."""
    replies = await _talk(RuleBrain(tools=tools, calendar=CAL, script=YOGA), *lines)
    for reply in replies:
        for word in BUILT_IN_WORDS:
            assert word not in reply.text, (word, reply.text)


async def test_objection_asks_for_the_scripts_meeting(tools: InMemoryBookingTools) -> None:
    """After "לא מעניין" the agent asks for the script's meeting, in both the question and
    its yes/no version."""
    replies = await _talk(
        RuleBrain(tools=tools, calendar=CAL, script=YOGA), "שלום", "לא מעניין", "אממ", "אממ"
    )
    assert "שיעור ניסיון בסטודיו" in replies[2].text
    assert "שיעור ניסיון בסטודיו" in replies[-1].text


async def test_built_in_script_still_offers_its_consultant(tools: InMemoryBookingTools) -> None:
    """The built-in script keeps asking for its own meeting (a talk with a consultant)."""
    replies = await _talk(RuleBrain(tools=tools, calendar=CAL), "שלום", "לא מעניין")
    assert "שיחת היכרות קצרה עם יועץ שלנו" in replies[-1].text


@pytest.mark.parametrize("line", ["אפשר לקבוע פגישה בשבת בעשר", "בוא נקבע ביום שבת בשתיים"])
async def test_meeting_on_a_closed_day_is_answered_plainly(
    tools: InMemoryBookingTools, line: str
) -> None:
    """A meeting asked for on Shabbat books nothing; the agent says that day is closed (not
    "at this hour"), without a stray "אז אין מקום פנוי", and offers open slots."""
    replies = await _talk(RuleBrain(tools=tools, calendar=CAL), "שלום", line)
    last = replies[-1]
    assert not tools.meetings and not last.end_call
    assert last.text.startswith("בשבת לא קובעים פגישות.")
    assert "אין מקום פנוי" not in last.text and "בשעה הזאת" not in last.text
    assert "יש מקום" in last.text


@pytest.mark.parametrize(
    ("line", "expected", "said"),
    [
        # Saturday 15/3 is Shabbat: the next open day is Sunday 16/3.
        ("תתקשרו אליי בשבת", datetime(2025, 3, 16, 9, 0, tzinfo=TZ), "ביום ראשון בתשע בבוקר"),
        # Three at night is not a time anyone is called: that morning, when calls start.
        (
            "תתקשרו אליי מחר בשלוש לפנות בוקר",
            datetime(2025, 3, 12, 9, 0, tzinfo=TZ),
            "מחר בתשע בבוקר",
        ),
        # Friday afternoon is past the Friday calling hours.
        (
            "תתקשרו אליי ביום שישי בארבע",
            datetime(2025, 3, 16, 9, 0, tzinfo=TZ),
            "ביום ראשון בתשע בבוקר",
        ),
    ],
)
async def test_callback_is_promised_only_when_calls_are_made(
    tools: InMemoryBookingTools, line: str, expected: datetime, said: str
) -> None:
    """A callback asked for on Shabbat, at night or on a Friday afternoon is stored and
    promised for the next time calls are made, never for a time the dialer will not call."""
    replies = await _talk(RuleBrain(tools=tools, calendar=CAL), "שלום", line)
    assert replies[-1].end_call
    assert tools.callbacks == [expected]
    assert said in replies[-1].text


async def test_callback_in_open_hours_is_kept(tools: InMemoryBookingTools) -> None:
    """A callback at an ordinary time is stored and promised as asked."""
    await _talk(RuleBrain(tools=tools, calendar=CAL), "שלום", "תתקשרו אליי מחר בחמש")
    assert tools.callbacks == [datetime(2025, 3, 12, 17, 0, tzinfo=TZ)]
