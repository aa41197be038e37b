"""The conversation brain: what the agent says next, from caller text alone.

Public surface: the contract (:mod:`.base`), the script (:mod:`.script`), the rule
brain (:class:`RuleBrain`), Hebrew understanding (:func:`detect_intent`,
:func:`parse_hebrew_time`), slot finding and text-for-speech helpers, and the
in-memory tools used by tests and the text demo.
"""

from __future__ import annotations

from voicebot.brain.base import (
    Action,
    BookingResult,
    BookingTools,
    Brain,
    ChatTurn,
    ConversationState,
    LeadContext,
    Reply,
)
from voicebot.brain.intents import IntentResult, detect_intent
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.normalize import normalize, words_to_digits
from voicebot.brain.rules import RuleBrain
from voicebot.brain.script import AgentScript
from voicebot.brain.slots import BusinessCalendar, free_slots, is_bookable
from voicebot.brain.speech_text import format_slot_hebrew, to_spoken
from voicebot.brain.timeparse import TimeParse, parse_hebrew_time

__all__ = [
    "Action",
    "AgentScript",
    "BookingResult",
    "BookingTools",
    "Brain",
    "BusinessCalendar",
    "ChatTurn",
    "ConversationState",
    "InMemoryBookingTools",
    "IntentResult",
    "LeadContext",
    "Reply",
    "RuleBrain",
    "TimeParse",
    "detect_intent",
    "format_slot_hebrew",
    "free_slots",
    "is_bookable",
    "normalize",
    "parse_hebrew_time",
    "to_spoken",
    "words_to_digits",
]
