"""The LLM brain's Hebrew system prompt, built from the agent script, the lead and the clock.

Owns :func:`build_system_prompt`: who the agent is and what it offers (from
:class:`~voicebot.brain.script.AgentScript`), whom it called (:class:`LeadContext`), the
current date and time and the business hours in the business time zone, what was already
offered this call, and the rules of a phone reply (short, spoken, tools for every action).
The prompt avoids second-person gendered forms toward the caller, like the rule phrases.
"""

from __future__ import annotations

from datetime import datetime

from voicebot.brain.base import ConversationState, LeadContext
from voicebot.brain.script import (
    HUMAN_FOLLOWUP_OFFER,
    HUMAN_FOLLOWUP_PRICE,
    AgentScript,
    hyphenate_prefixes,
    speakable_name,
)
from voicebot.brain.slots import BusinessCalendar
from voicebot.brain.speech_text import WEEKDAY_NAMES, format_slot_hebrew

# Sentences per reply the prompt asks for; the brain speaks at most two more pieces
# (clauses cut early at a comma count as pieces) and drops the rest.
MAX_REPLY_SENTENCES = 2

# "שני משפטים" in the rules below is MAX_REPLY_SENTENCES in words.
_RULES = """\
כללי השיחה:
- זו שיחת טלפון. כל תשובה היא שני משפטים קצרים לכל היותר, בעברית מדוברת \
ופשוטה, בלי רשימות, בלי סימנים מיוחדים ובלי אימוג'י.
- לא לפנות למי שמדבר בלשון זכר או נקבה; לנסח בלשון רבים או בסתמי.
- לשאול שאלה אחת בכל פעם, ולהוביל בעדינות לקביעת {purpose} של {length} דקות.
- כל פעולה נעשית רק דרך הכלים, ואסור להגיד שפעולה נעשתה לפני שהכלי החזיר ok.
- לפני הצעת מועדים לקרוא ל-propose_slots ולהציע רק מועדים שהוחזרו. לקבוע עם book_meeting \
רק אחרי שהצד השני הסכים למועד מסוים.
- זמנים בכלים נכתבים ב-ISO 8601 בשעון {tz}, למשל {example}.
- בקשה להסיר את המספר או לא להתקשר יותר: מיד add_to_do_not_call.
- בקשה לדבר עם נציג אנושי: מיד transfer_to_human.
- "תתקשרו מחר בחמש" וכדומה: schedule_callback עם הזמן המדויק.
- חוסר עניין אחרי תשובה אחת להתנגדות: mark_not_interested. טעות במספר או סיום שיחה: end_call.
- אחרי פעולה שמסיימת את השיחה (קביעה, חזרה, הסרה, העברה) לומר משפט סיום קצר אחד ולא לשאול עוד.
- אם כלי החזיר שגיאה, להסביר בקצרה ולהציע חלופה."""


def build_system_prompt(
    script: AgentScript,
    state: ConversationState,
    *,
    now: datetime,
    calendar: BusinessCalendar,
) -> str:
    """The whole system prompt for one turn; deterministic for a given input."""
    local_now = now.astimezone(calendar.tz)
    example = local_now.replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
    parts = [
        _identity(script),
        _lead(state.lead),
        _clock(local_now, calendar),
        _script_facts(script),
        _RULES.format(
            purpose=script.meeting_purpose,
            length=script.meeting_length_min,
            tz=calendar.tz.key,
            example=example,
        ),
    ]
    offered = _offered(state, local_now)
    if offered:
        parts.append(offered)
    return "\n\n".join(parts)


def _identity(script: AgentScript) -> str:
    who = (
        hyphenate_prefixes(f"{script.agent_name} מ{script.company}")
        if script.company
        else script.agent_name
    )
    company = (
        ""
        if script.company
        else "שם החברה לא כתוב בתסריט: לא להמציא שם חברה ולא לומר שם של חברה אחרת. "
    )
    offer = (
        f"מה אנחנו מציעים: {script.offer}"
        if script.offer
        else "מה אנחנו מציעים לא כתוב בתסריט: לא להמציא הצעה או מוצר; אם שואלים, "
        f'לומר "{HUMAN_FOLLOWUP_OFFER}" ולהציע לקבוע שיחה.'
    )
    return (
        f"התפקיד: {who}, בשיחת מכירה יוצאת. "
        'מדברים על עצמנו בגוף ראשון רבים ("אנחנו", "קבענו"). '
        f"{company}{offer}\n"
        "על החברה, ההצעה והמחיר אומרים רק מה שכתוב כאן, בלי להוסיף מספרים או פרטים."
    )


def _lead(lead: LeadContext | None) -> str:
    name = speakable_name(lead.name) if lead else None  # a formula from a CSV is no name
    if lead is None or not (name or lead.company):
        return "הפרטים של מי שמדבר איתנו לא ידועים."
    who = f"מדברים עם {name}" if name else "מדברים עם מישהו"
    return f"{who} מהעסק {lead.company}." if lead.company else f"{who}."


def _clock(local_now: datetime, calendar: BusinessCalendar) -> str:
    days = ", ".join(
        WEEKDAY_NAMES[d] for d in sorted(calendar.business_days, key=lambda d: (d + 1) % 7)
    )
    return (
        f"עכשיו יום {WEEKDAY_NAMES[local_now.weekday()]}, {local_now:%Y-%m-%d %H:%M} "
        f"(שעון {calendar.tz.key}). פגישות נקבעות בימים {days}, "
        f"בין {calendar.day_start:%H:%M} ל-{calendar.day_end:%H:%M}, "
        "אף פעם לא בשבת ולא ביום שישי אחרי הצהריים."
    )


def _script_facts(script: AgentScript) -> str:
    lines = [
        f"הפגישה: {script.meeting_purpose}, {script.meeting_length_min} דקות.",
        "תשובות מוכנות להתנגדויות (אפשר לנסח מחדש בקצרה):",
        f"- מחיר: {script.objections.price}"
        if script.objections.price
        else f'- מחיר: אין מחיר בתסריט. אסור לנקוב במחיר; לומר "{HUMAN_FOLLOWUP_PRICE}"',
        f"- לשלוח פרטים: {script.objections.send_email}",
        f"- מאיפה המספר: {script.objections.number_source}",
        f"- אין זמן עכשיו: {script.objections.busy}",
        f"- לא מעוניין: {script.objections.not_interested}",
    ]
    if script.qualifying_questions:
        lines.append("שאלות היכרות לשאול לפני קביעה, אחת בכל פעם:")
        lines.extend(f"- {q}" for q in script.qualifying_questions)
    return "\n".join(lines)


def _offered(state: ConversationState, local_now: datetime) -> str:
    facts = []
    if state.proposed_slots:
        slots = "; ".join(
            f"{s.isoformat()} ({format_slot_hebrew(s, local_now)})" for s in state.proposed_slots
        )
        facts.append(f"מועדים שכבר הוצעו בשיחה: {slots}.")
    if state.booked_meeting_id is not None:
        facts.append("כבר נקבעה פגישה בשיחה הזאת.")
    if state.callback_at is not None:
        facts.append(f"כבר נקבעה חזרה ב-{state.callback_at.isoformat()}.")
    return "\n".join(facts)
