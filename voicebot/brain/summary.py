"""A short Hebrew summary of one call, for the people who follow up on it.

:func:`rule_summary` writes one or two sentences from the conversation state alone
(outcome, meeting or callback time, answers to the qualifying questions, objections).
:func:`summarize` asks the language model for a summary of the transcript, bounded by a
timeout, and falls back to the rule-based one on any provider failure or empty answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, tzinfo

import structlog

from voicebot.brain.base import ConversationState
from voicebot.errors import ProviderError
from voicebot.providers.base import ChatMessage, LanguageModel, TextDelta

log = structlog.get_logger(__name__)

SUMMARY_TIMEOUT_S = 6.0
"""Bound on the whole LLM summary request (the call has already ended)."""
SUMMARY_MAX_TOKENS = 160
SUMMARY_TEMPERATURE = 0.2
SUMMARY_MAX_CHARS = 600
"""Longest summary stored; a rambling model answer is cut at a sentence end before it."""
TRANSCRIPT_MAX_TURNS = 40
"""Most recent turns sent to the model; the ends of long calls matter most."""
ANSWER_MAX_CHARS = 80

HEBREW_WEEKDAYS = ("שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת", "ראשון")

OUTCOME_SENTENCES: dict[str, str] = {
    "meeting_booked": "נקבעה פגישה",
    "callback_scheduled": "ביקשו שנחזור",
    "not_interested": "לא מעוניינים בהצעה.",
    "do_not_call": "ביקשו להסיר את המספר מרשימת החיוג.",
    "wrong_number": "מספר שגוי.",
    "transferred": "השיחה הועברה לנציג אנושי.",
    "no_answer": "לא הייתה תשובה.",
    "voicemail": "נענה במשיבון, הושארה הודעה.",
    "failed": "השיחה נכשלה.",
    "completed": "השיחה הסתיימה בלי תוצאה מוגדרת.",
    "tts_unavailable": "השיחה נותקה בגלל תקלה במערכת הדיבור; ננסה שוב.",
}

SYSTEM_PROMPT = (
    "את עוזרת שמסכמת שיחות מכירה טלפוניות. כתבי סיכום של משפט אחד או שניים בעברית: "
    "מה הייתה התוצאה, מועד פגישה או חזרה אם נקבע, ומה הלקוח סיפר או התנגד. "
    "בלי הקדמה, בלי רשימות ובלי להמציא פרטים."
)
ROLE_NAMES = {"user": "לקוח", "assistant": "נציגה"}


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the summary may state beyond the conversation state itself."""

    outcome: str
    tz: tzinfo
    meeting_at: datetime | None = None


def spoken_moment(moment: datetime, tz: tzinfo) -> str:
    """``יום רביעי 25.11 בשעה 10:00`` in the business time zone."""
    local = moment.astimezone(tz)
    return f"יום {HEBREW_WEEKDAYS[local.weekday()]} {local.day}.{local.month} בשעה {local:%H:%M}"


def rule_summary(state: ConversationState, facts: CallFacts) -> str:
    """One or two Hebrew sentences from the state: outcome first, then what was learned."""
    head = OUTCOME_SENTENCES.get(facts.outcome, OUTCOME_SENTENCES["completed"])
    if facts.outcome == "meeting_booked":
        head += f" ל{spoken_moment(facts.meeting_at, facts.tz)}." if facts.meeting_at else "."
    elif facts.outcome == "callback_scheduled":
        when = state.callback_at
        head += f" ב{spoken_moment(when, facts.tz)}." if when else "."
    if state.lead is not None and state.lead.name:
        head = f"{state.lead.name}: {head}"
    details: list[str] = []
    answers = [_clip(a) for a in state.answers if a.strip()]
    if answers:
        details.append("ענו לשאלות: " + "; ".join(answers))
    if state.objection_count:
        details.append(f"הועלו התנגדויות ({state.objection_count})")
    return head if not details else f"{head} {', '.join(details)}."


async def summarize(
    state: ConversationState,
    facts: CallFacts,
    *,
    llm: LanguageModel | None,
    timeout_s: float = SUMMARY_TIMEOUT_S,
) -> str:
    """The LLM's summary when a model is configured and answers in time, else the rules'."""
    fallback = rule_summary(state, facts)
    if llm is None or not state.history:
        return fallback
    try:
        async with asyncio.timeout(timeout_s):
            text = await _llm_text(llm, _messages(state, facts, fallback))
    except (ProviderError, TimeoutError) as exc:
        log.warning("call.summary_llm_failed", error=type(exc).__name__)
        return fallback
    text = _trim(text)
    return text or fallback


def _messages(state: ConversationState, facts: CallFacts, fallback: str) -> list[ChatMessage]:
    lines = [
        f"{ROLE_NAMES.get(turn.role, turn.role)}: {turn.content}"
        for turn in state.history[-TRANSCRIPT_MAX_TURNS:]
    ]
    user = "\n".join(
        [
            f"תוצאה רשומה: {facts.outcome}",
            f"עובדות ידועות: {fallback}",
            "תמליל:",
            *lines,
        ]
    )
    return [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", user)]


async def _llm_text(llm: LanguageModel, messages: list[ChatMessage]) -> str:
    parts: list[str] = []
    events = llm.stream_chat(
        messages, temperature=SUMMARY_TEMPERATURE, max_tokens=SUMMARY_MAX_TOKENS
    )
    async with contextlib.aclosing(events) as stream:  # type: ignore[type-var]
        async for event in stream:
            if isinstance(event, TextDelta):
                parts.append(event.text)
    return "".join(parts)


def _trim(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= SUMMARY_MAX_CHARS:
        return text
    cut = text[:SUMMARY_MAX_CHARS]
    end = cut.rfind(".")
    return cut[: end + 1] if end > 0 else cut


def _clip(answer: str) -> str:
    answer = " ".join(answer.split())
    return answer if len(answer) <= ANSWER_MAX_CHARS else answer[: ANSWER_MAX_CHARS - 1] + "…"
