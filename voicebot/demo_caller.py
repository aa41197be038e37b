"""The demo's scripted caller: it listens to each agent turn and answers in Hebrew.

Owns the conversation half of ``voicebot demo``: the caller's script (each answer
chosen by a cue in what the agent just said), the turn loop over a live
:class:`~voicebot.testing.twilio_caller.SimulatedCall`, and the printed lines. The agent's
words come from the call's turns as the server stores them; the caller answers only once
the agent's audio has been played out, as a polite person would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.db.models import Call, CallTurn
from voicebot.testing.call_timeline import CallTimeline
from voicebot.testing.twilio_caller import SimulatedCall, Utterance, place_call

MAX_CALLER_TURNS = 8  # the scripted conversation needs four
AGENT_TURN_TIMEOUT_S = 30.0  # caller speech → the agent's reply stored
AGENT_PLAYBACK_TIMEOUT_S = 30.0  # longest agent reply played out
TURN_POLL_S = 0.05  # how often the database is read for the agent's next turn
AGENT_QUIET_S = 0.25  # no agent audio for this long (after its last mark) = done speaking
CALLER_PAUSE_S = 0.5  # the caller's natural pause before answering
CALL_END_TIMEOUT_S = 10.0  # after the goodbye, the server closes the stream

# What the caller answers, chosen by the first cue found in the agent's last turn.
YES = "כן, נכון"
CALLER_SCRIPT: tuple[tuple[tuple[str, ...], str], ...] = (
    (("רק לוודא", "כן או לא"), YES),
    (("מה מתאים", "או היום", "או מחר", "מעולה. "), "הראשון מתאים לי"),
    (("כמה אנשים",), "אנחנו חמישה אנשים"),
    (("טלפונים",), "בעיקר אני עונה בעצמי, והרבה שיחות הולכות לאיבוד"),
    (("זמן טוב לדבר", "אפשר לדבר"), "כן, אפשר לדבר עכשיו"),
)
CALLER_PHRASES = (YES, *(line for _, line in CALLER_SCRIPT))


@dataclass(frozen=True, slots=True)
class DemoLine:
    """One printed line of the conversation."""

    speaker: Literal["agent", "caller"]
    text: str
    latency_ms: float | None = None


def caller_answer(agent_text: str) -> str:
    """The scripted caller's answer to what the agent just said."""
    for cues, line in CALLER_SCRIPT:
        if any(cue in agent_text for cue in cues):
            return line
    return YES


async def converse(
    base_url: str,
    sessions: async_sessionmaker[AsyncSession],
    speech: dict[str, bytes],
    out: Callable[[str], None],
    *,
    account_sid: str,
    auth_token: str,
    lead_phone: str,
    from_number: str,
    answer: Callable[[str], str] = caller_answer,
) -> tuple[str, list[DemoLine], bytes]:
    """Place the call and talk until the agent hangs up; returns SID, lines and the WAV.

    ``answer`` picks the caller's next line from the agent's last turn (its text must be
    a key of ``speech``); the demo's script by default.
    """
    async with place_call(
        base_url,
        account_sid=account_sid,
        auth_token=auth_token,
        to_number=lead_phone,
        from_number=from_number,
    ) as call:
        lines, timeline = await talk_on(call, sessions, speech, out, answer=answer)
    return call.call_sid, lines, await asyncio.to_thread(timeline.stereo_wav)


async def talk_on(
    call: SimulatedCall,
    sessions: async_sessionmaker[AsyncSession],
    speech: dict[str, bytes],
    out: Callable[[str], None],
    *,
    answer: Callable[[str], str] = caller_answer,
) -> tuple[list[DemoLine], CallTimeline]:
    """Hold the scripted conversation on an open stream until the agent hangs up; returns
    the printed lines and the call's timeline (its stereo WAV). Raises TimeoutError when
    the agent stays silent past ``AGENT_TURN_TIMEOUT_S``."""
    lines: list[DemoLine] = []

    def show(line: DemoLine) -> None:
        lines.append(line)
        if line.speaker == "caller":
            out(f"לקוח: {line.text}")
        else:
            latency = "" if line.latency_ms is None else f" ({line.latency_ms:.0f} ms)"
            out(f"סוכן{latency}: {line.text}")

    timeline = CallTimeline(call)
    async with asyncio.TaskGroup() as group:
        follower = group.create_task(timeline.follow())
        try:
            await _talk(call, timeline, sessions, speech, show, answer)
        finally:
            follower.cancel()
    return lines, timeline


async def _talk(
    call: SimulatedCall,
    timeline: CallTimeline,
    sessions: async_sessionmaker[AsyncSession],
    speech: dict[str, bytes],
    show: Callable[[DemoLine], None],
    answer: Callable[[str], str],
) -> None:
    """Answer each agent turn once it has been heard; every stored agent turn is shown,
    in order, even when the agent says two things in a row (e.g. a silence check-in)."""
    last_seq, last_text = 0, ""
    asked: Utterance | None = None

    def show_turns(turns: list[CallTurn], latency_ms: float | None) -> None:
        nonlocal last_seq, last_text
        for index, turn in enumerate(turns):
            show(DemoLine("agent", turn.text, latency_ms if index == 0 else None))
            last_seq, last_text = turn.seq, turn.text

    for _ in range(MAX_CALLER_TURNS + 1):
        turns = await _wait_agent_turns(sessions, call.call_sid, last_seq)
        if asked is None:
            latency = call.metrics.first_agent_media_ms
        else:
            await call.wait_until(_answered(asked), AGENT_PLAYBACK_TIMEOUT_S)
            latency = asked.response_latency_ms
        show_turns(turns, latency)
        await call.wait_until(_done_speaking(call, timeline), AGENT_PLAYBACK_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            await call.wait_until(lambda: call.ended, CALLER_PAUSE_S)
        show_turns(await _agent_turns(sessions, call.call_sid, last_seq), None)
        if call.ended:
            return
        line = answer(last_text)
        show(DemoLine("caller", line))
        asked = timeline.say(pcm16_to_ulaw(speech[line]))
        await asyncio.wait_for(asked.done.wait(), AGENT_PLAYBACK_TIMEOUT_S)
    await call.wait_until(lambda: call.ended, CALL_END_TIMEOUT_S)
    show_turns(await _agent_turns(sessions, call.call_sid, last_seq), None)


def _answered(utterance: Utterance) -> Callable[[], bool]:
    return lambda: utterance.response_latency_ms is not None


def _done_speaking(call: SimulatedCall, timeline: CallTimeline) -> Callable[[], bool]:
    return lambda: call.ended or timeline.agent_quiet(AGENT_QUIET_S)


async def _agent_turns(
    sessions: async_sessionmaker[AsyncSession], call_sid: str, after_seq: int
) -> list[CallTurn]:
    """The agent's stored turns after ``after_seq``, in order (each is stored once spoken)."""
    stmt = (
        select(CallTurn)
        .join(Call, Call.id == CallTurn.call_id)
        .where(Call.call_sid == call_sid, CallTurn.role == "assistant", CallTurn.seq > after_seq)
        .order_by(CallTurn.seq)
    )
    async with sessions() as session:
        return list((await session.scalars(stmt)).all())


async def _wait_agent_turns(
    sessions: async_sessionmaker[AsyncSession], call_sid: str, after_seq: int
) -> list[CallTurn]:
    """Poll the database (the server's recorder owns the turns) until the agent has spoken."""
    async with asyncio.timeout(AGENT_TURN_TIMEOUT_S):
        while True:
            turns = await _agent_turns(sessions, call_sid, after_seq)
            if turns:
                return turns
            await asyncio.sleep(TURN_POLL_S)
