"""The caller's keys (DTMF): what reaches the turn loop, storms, and the opt-out key.

The media route hands every key to ``CallSession.on_dtmf``, which interrupts the agent
like speech and queues a :class:`DtmfIn`. The turn loop answers a key with
:func:`key_reply`; keys pressed faster than it answers them are answered once
(:func:`coalesce_keys`), and the opt-out key is never lost among them. The opt-out's
confirmation is one short sentence that ends the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from voicebot.brain.base import Brain, ConversationState, Reply
from voicebot.brain.rules import DTMF_INTENTS
from voicebot.call.speaker import OPT_OUT_KEY_TEXT

if TYPE_CHECKING:
    from voicebot.call.session import UtteranceIn


@dataclass(frozen=True, slots=True)
class DtmfIn:
    digit: str


async def key_reply(
    brain: Brain, state: ConversationState, digit: str, now: Callable[[], datetime]
) -> Reply:
    """The brain's answer to a key; the opt-out key is confirmed in one short sentence."""
    reply = await brain.on_dtmf(state, digit, now=now())
    if any(action.kind == "add_to_do_not_call" for action in reply.actions):
        actions = reply.actions
        return Reply(OPT_OUT_KEY_TEXT, reply.intent, actions, end_call=True, transfer=False)
    return reply


def coalesce_keys(inbox: asyncio.Queue[UtteranceIn | DtmfIn], digit: str, log: Any) -> str:
    """The key to act on among ``digit`` and the keys queued right behind it: keys
    pressed faster than the agent answers them (a storm) are answered once, by the
    opt-out key when it is among them (it is never lost), else by the last one.
    Whatever follows the keys in the inbox stays queued, in order."""
    digits = [digit]
    rest: list[UtteranceIn | DtmfIn] = []
    while not inbox.empty():
        item = inbox.get_nowait()
        if isinstance(item, DtmfIn) and not rest:
            digits.append(item.digit)
        else:
            rest.append(item)
    for item in rest:
        inbox.put_nowait(item)
    if len(digits) > 1:
        log.info("call.keys_coalesced", keys=len(digits))
    opt_out = [d for d in digits if DTMF_INTENTS.get(d) == "remove_me"]
    return opt_out[0] if opt_out else digits[-1]
