"""Benchmark: is a lead callable now? ``lead_timezone`` + ``CallingWindow.is_open`` per lead.

A campaign sweep asks this for every due lead, so its cost bounds how fast 10,000 leads
can be scheduled. Prints the total and per-lead percentiles for a cold pass (no phone →
zone answer cached) and a warm one, and for ``next_open``.

    .venv/bin/python scripts/bench_calling_window.py [--leads 10000] [--us-share 0.1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from voicebot.scheduling import CallingWindow, lead_timezone
from voicebot.scheduling.timezones import number_zone

DEFAULT_ZONE = "Asia/Jerusalem"
SEED = 20261129


def phones(count: int, us_share: float) -> list[str]:
    rng = random.Random(SEED)
    us = int(count * us_share)
    israeli = [f"+97250{rng.randint(1_000_000, 9_999_999)}" for _ in range(count - us)]
    return israeli + [f"+1212555{rng.randint(1000, 9999)}" for _ in range(us)]


def measure(name: str, numbers: list[str], step: Callable[[str], object]) -> None:
    per_lead_us: list[float] = []
    started = time.perf_counter()
    for phone in numbers:
        t0 = time.perf_counter()
        step(phone)
        per_lead_us.append((time.perf_counter() - t0) * 1e6)
    total_ms = (time.perf_counter() - started) * 1000
    q = statistics.quantiles(per_lead_us, n=100)
    print(
        f"{name:<28} total {total_ms:7.1f} ms   per lead p50 {q[49]:6.1f} µs   "
        f"p90 {q[89]:6.1f} µs   p99 {q[98]:6.1f} µs   max {max(per_lead_us):7.1f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--us-share", type=float, default=0.1)
    args = parser.parse_args()
    numbers = phones(args.leads, args.us_share)
    window = CallingWindow.from_fields(
        window_days="sun,mon,tue,wed,thu,fri", window_start="09:00", window_end="19:00"
    )
    now = datetime(2027, 11, 2, 10, 0, tzinfo=UTC)  # Tuesday: open in Israel, not in New York

    def is_open(phone: str) -> bool:
        return window.is_open(now, lead_timezone(phone, None, DEFAULT_ZONE))

    def next_open(phone: str) -> object:
        return window.next_open(now, lead_timezone(phone, None, DEFAULT_ZONE))

    print(f"{args.leads} leads, {args.us_share:.0%} +1 212 numbers")
    number_zone.cache_clear()
    measure("zone + is_open (cold)", numbers, is_open)
    measure("zone + is_open (warm)", numbers, is_open)
    measure("zone + next_open (warm)", numbers, next_open)


if __name__ == "__main__":
    main()
