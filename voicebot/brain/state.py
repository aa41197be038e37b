"""RuleBrain's conversation stages and what the agent awaits in each.

Owns the stage names stored in :attr:`ConversationState.stage` and the mapping from
a stage to the kind of answer expected, which makes intent detection context-aware.
"""

from __future__ import annotations

from typing import Final

from voicebot.brain.intents import Expecting, Moment

GREETING: Final = "greeting"  # before the first words
PERMISSION: Final = "permission"  # asked whether this is a good time
QUALIFY: Final = "qualify"  # asking the qualifying questions
OBJECTION: Final = "objection"  # answered "not interested" once, asked again
PROPOSE: Final = "propose"  # offered meeting slots
CONFIRM: Final = "confirm"  # read back a time the caller chose
CALLBACK: Final = "callback"  # asked when to call back
ENDED: Final = "ended"

EXPECTING: Final[dict[str, Expecting]] = {
    GREETING: "yes_no",
    PERMISSION: "yes_no",
    QUALIFY: "none",
    OBJECTION: "yes_no",
    PROPOSE: "slot",
    CONFIRM: "slot",
    CALLBACK: "time",
    ENDED: "none",
}

# The moment of the call each stage is: the same words mean different things at each.
MOMENT: Final[dict[str, Moment]] = {
    GREETING: "greeting",
    PERMISSION: "greeting",
    QUALIFY: "pitch",
    OBJECTION: "closing",
    PROPOSE: "slots",
    CONFIRM: "slots",
    CALLBACK: "closing",
    ENDED: "closing",
}

# Stages in which a "not interested" still gets one answer before the call ends.
PERSUADABLE: Final = frozenset({PERMISSION, QUALIFY, PROPOSE, CONFIRM})
