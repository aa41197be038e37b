"""Machine-speech screening of a call's first recognised utterance (issue #13).

:func:`screen_first_words` checks the caller's first words for a mailbox greeting, a
network announcement or a long monologue (:func:`~voicebot.brain.machine_speech.machine_kind`).
The turn loop calls it from ``TurnLoop._handle_utterance``: the one place the batch
and the speculative paths meet before a reply to the utterance is heard (a speculative
reply is still held there). A match acts as AMD's machine verdict does, through
``services.on_machine_speech`` (the AMD route's code path and ``amd:<CallSid>`` token):
the agent stops talking, takes no more turns, and Twilio's ``stop`` ends the session.

Failure: a recognition error returns None (the turn recognises afresh and the next
recognised utterance is screened); empty words leave screening on for the next one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from voicebot.brain.machine_speech import machine_kind
from voicebot.call.recognition import INBOUND_RATE_HZ
from voicebot.errors import ProviderError

if TYPE_CHECKING:
    from voicebot.call.session import CallSession, UtteranceIn

_PCM16_BYTES_PER_MS = 2 * INBOUND_RATE_HZ // 1000  # the endpointer's utterance audio


async def screen_first_words(call: CallSession, item: UtteranceIn) -> str | None:
    """Check the caller's first recognised utterance for a recording (a mailbox
    greeting, a network announcement, a long monologue: :func:`machine_kind`); on a
    match act as on AMD's machine verdict (``services.on_machine_speech``, the AMD
    route's code path and ledger token) and take no more turns. Returns the words
    recognised (None when recognition failed: the turn recognises afresh)."""
    spec = item.speculation
    text: str | None = None
    if spec is not None:
        if spec.task is not None:
            await asyncio.wait({spec.task})
        if spec.error is None:
            text = spec.text
    if text is None:
        try:
            text = await call.recognition.utterance_text(item.transcript, item.audio)
        except ProviderError:
            return None
    if not text:
        return text  # nothing recognised: the next utterance is the first
    call._screening = False
    kind = machine_kind(text, speech_ms=len(item.audio) / _PCM16_BYTES_PER_MS)
    hook = call.services.on_machine_speech
    if kind is None or hook is None:
        return text
    call.log.info("call.machine_speech", kind=kind, words=len(text.split()))
    call._machine = True
    if spec is not None:
        call.speculator.discard(spec, "machine")
    await call.stop_for_machine()
    if not await hook(call.call_sid, kind):
        call.log.info("call.machine_speech_not_acted", kind=kind)  # AMD acted first
    await call.ended.wait()  # Twilio's stop (after the message or the hang-up) ends it
    return text
