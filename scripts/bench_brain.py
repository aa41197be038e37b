"""Latency of RuleBrain.respond over caller utterances (p50 / p99 / max, wall and CPU).

Each utterance is answered in a fresh conversation placed at the stage its row
expects (permission, questions, slot proposal, objection/callback), with the
in-memory tools. Rows: the intent table (:mod:`voicebot.brain.utterances`) and the
training rows of the labelled evaluation (development half and training-only rows; the
held-out sets are left unread, so nobody tuning the brain sees them). The text
caches are cleared before every call, because a live caller never says the same
recognised sentence twice. Wall time includes whatever else the machine runs; CPU
time (this thread only) is the brain's own cost.
Run: ``.venv/bin/python scripts/bench_brain.py [rounds]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time as clock
from datetime import datetime, time
from zoneinfo import ZoneInfo

from voicebot.brain import state as st
from voicebot.brain.base import ConversationState
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.normalize import normalize, words_to_digits
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar
from voicebot.brain.utterances import INTENT_CASES
from voicebot.testing.intent_eval import MOMENT_STAGE, load_training

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)
DEFAULT_ROUNDS = 20
STAGE_FOR = {"yes_no": "permission", "none": "qualify", "slot": "propose", "time": "callback"}
NS_PER_MS = 1_000_000


def _rows() -> list[tuple[str, str]]:
    """(text, stage) for every table row and every training row."""
    rows = [(text, STAGE_FOR[expecting]) for text, expecting, _ in INTENT_CASES]
    rows += [(case.text, MOMENT_STAGE[case.moment]) for case in load_training()]
    return rows


async def bench(rounds: int) -> tuple[list[int], list[int]]:
    """Respond to every row ``rounds`` times; return per-call wall and CPU nanoseconds."""
    cal = BusinessCalendar(
        tz=TZ,
        business_days=frozenset({6, 0, 1, 2, 3}),
        day_start=time(9),
        day_end=time(18),
        meeting_min=30,
    )
    wall: list[int] = []
    cpu: list[int] = []
    slots = [datetime(2025, 3, 11, 10, 0, tzinfo=TZ), datetime(2025, 3, 11, 14, 0, tzinfo=TZ)]
    rows = _rows()
    for _ in range(rounds):
        for text, stage in rows:
            tools = InMemoryBookingTools(calendar=cal, clock=NOW)
            brain = RuleBrain(tools=tools, calendar=cal)
            state = ConversationState(stage=stage)
            if stage == st.PROPOSE:
                state.proposed_slots = list(slots)
            normalize.cache_clear()
            words_to_digits.cache_clear()
            start, start_cpu = clock.perf_counter_ns(), clock.thread_time_ns()
            await brain.respond(state, text, now=NOW)
            cpu.append(clock.thread_time_ns() - start_cpu)
            wall.append(clock.perf_counter_ns() - start)
    return wall, cpu


def _line(name: str, samples: list[int]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return (
        f"RuleBrain.respond {name}: n={len(samples)} p50={p50 / NS_PER_MS:.3f} ms "
        f"p99={p99 / NS_PER_MS:.3f} ms max={samples[-1] / NS_PER_MS:.3f} ms"
    )


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_ROUNDS
    wall, cpu = asyncio.run(bench(rounds))
    print(_line("wall", wall))
    print(_line("cpu ", cpu))


if __name__ == "__main__":
    main()
