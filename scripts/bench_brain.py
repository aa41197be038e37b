"""Latency of RuleBrain.respond over the intent utterance table (p50 / p99 / max).

Each utterance is answered in a fresh conversation placed at the stage its row
expects (permission, slot proposal, callback question), with the in-memory tools.
Run: ``.venv/bin/python scripts/bench_brain.py [rounds]``.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time as clock
from datetime import datetime, time
from zoneinfo import ZoneInfo

from voicebot.brain.base import ConversationState
from voicebot.brain.memory_tools import InMemoryBookingTools
from voicebot.brain.rules import RuleBrain
from voicebot.brain.slots import BusinessCalendar
from voicebot.brain.utterances import INTENT_CASES

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2025, 3, 11, 9, 0, tzinfo=TZ)
DEFAULT_ROUNDS = 50
STAGE_FOR = {"yes_no": "permission", "none": "qualify", "slot": "propose", "time": "callback"}
NS_PER_MS = 1_000_000


async def bench(rounds: int) -> list[int]:
    """Respond to every table utterance ``rounds`` times; return per-call nanoseconds."""
    cal = BusinessCalendar(
        tz=TZ,
        business_days=frozenset({6, 0, 1, 2, 3}),
        day_start=time(9),
        day_end=time(18),
        meeting_min=30,
    )
    samples: list[int] = []
    slots = [datetime(2025, 3, 11, 10, 0, tzinfo=TZ), datetime(2025, 3, 11, 14, 0, tzinfo=TZ)]
    for _ in range(rounds):
        for text, expecting, _expected in INTENT_CASES:
            tools = InMemoryBookingTools(calendar=cal, clock=NOW)
            brain = RuleBrain(tools=tools, calendar=cal)
            state = ConversationState(stage=STAGE_FOR[expecting])
            if expecting == "slot":
                state.proposed_slots = list(slots)
            start = clock.perf_counter_ns()
            await brain.respond(state, text, now=NOW)
            samples.append(clock.perf_counter_ns() - start)
    return samples


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_ROUNDS
    samples = sorted(asyncio.run(bench(rounds)))
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(
        f"RuleBrain.respond: n={len(samples)} p50={p50 / NS_PER_MS:.3f} ms "
        f"p99={p99 / NS_PER_MS:.3f} ms max={samples[-1] / NS_PER_MS:.3f} ms"
    )


if __name__ == "__main__":
    main()
