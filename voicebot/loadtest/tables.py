"""Markdown tables of benchmark results (the ``--json`` reports of the load generator).

A point is *clean* when no call failed, no underrun was heard and the pipeline
overhead p99 is within :data:`OVERHEAD_P99_LIMIT_MS`.
"""

from __future__ import annotations

import math
from typing import Any

OVERHEAD_P99_LIMIT_MS = 80.0
Report = dict[str, Any]


def fmt(value: float | None, digits: int = 0) -> str:
    """A figure for a table cell; unknown (None or NaN) is ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def clean(report: Report) -> bool:
    """No failed call, no underrun, overhead p99 within the limit."""
    p99 = report["overhead_ms"]["p99_ms"]
    return (
        report["calls_failed"] == 0
        and report["underruns"] == 0
        and (p99 is None or p99 <= OVERHEAD_P99_LIMIT_MS)
    )


def talking_table(reports: list[Report]) -> str:
    """One row per concurrency of a scenario where callers speak."""
    lines = [
        "| calls | ok (agent hung up) | failed | turns | turn p50 / p99 ms "
        "| overhead p50 / p90 / p99 ms | greeting p50 / p99 ms "
        "| barge-in→clear p50 / p99 ms | underruns "
        "| frame delay p99 / max ms | server loop lag worst ms | server CPU core-s per call-min "
        "| load gen cores | clean |",
        "| " + " | ".join(["---"] * 14) + " |",
    ]
    for r in reports:
        o, t, g, b, f = (
            r["overhead_ms"],
            r["turn"],
            r["greeting"],
            r["barge_in_clear"],
            r["frame_delay"],
        )
        failures = "; ".join(f"{n}× {k}" for k, n in r["failure_reasons"].items())
        dropped = f", {r['calls_dropped']} dropped" if "calls_dropped" in r else ""
        # Answered turns, of the turns callers spoke (reports before that count: answered).
        asked = f" of {r['turns_asked']}" if "turns_asked" in r else ""
        lines.append(
            f"| {r['calls']} | {r['calls_ok']} ({r.get('calls_ended_by_agent', 0)}) "
            f"| {r['calls_failed']}{dropped}"
            f"{' (' + failures + ')' if failures else ''} | {t['n']}{asked} "
            f"| {fmt(t['p50_ms'])} / {fmt(t['p99_ms'])} "
            f"| {fmt(o['p50_ms'])} / {fmt(o['p90_ms'])} / {fmt(o['p99_ms'])} "
            f"| {fmt(g['p50_ms'])} / {fmt(g['p99_ms'])} | {fmt(b['p50_ms'])} / {fmt(b['p99_ms'])} "
            f"| {r['underruns']} | {fmt(f['p99_ms'])} / {fmt(f['max_ms'])} "
            f"| {fmt(r.get('server_loop_lag_worst_ms'))} "
            f"| {fmt(r['server_cpu_s_per_call_minute'], 2)} | {fmt(r['loadgen_cores'], 2)} "
            f"| {'yes' if clean(r) else 'no'} |"
        )
    return "\n".join(lines)


def listening_table(reports: list[Report]) -> str:
    """One row per concurrency of the scenario where callers only listen."""
    lines = [
        "| idle calls | ok | failed | call-minutes | server CPU core-s per call-min "
        "| RSS before MiB | memory per idle call MiB | frame delay p99 ms | load gen cores |",
        "| " + " | ".join(["---"] * 9) + " |",
    ]
    for r in reports:
        lines.append(
            f"| {r['calls']} | {r['calls_ok']} | {r['calls_failed']} | {fmt(r['call_minutes'], 1)} "
            f"| {fmt(r['server_cpu_s_per_call_minute'], 3)} "
            f"| {fmt(r['server_rss_before_mib'], 0)} | {fmt(r['server_memory_per_call_mib'], 2)} "
            f"| {fmt(r['frame_delay']['p99_ms'])} | {fmt(r['loadgen_cores'], 2)} |"
        )
    return "\n".join(lines)


def summary(name: str, reports: list[Report]) -> str:
    """The highest clean concurrency of a scenario, as a sentence."""
    ok = [r["calls"] for r in reports if clean(r)]
    best = max(ok) if ok else 0
    llm = "LLM in the call path" if any(r["llm_requests"] for r in reports) else "no LLM requests"
    return f"Highest clean concurrency ({name}): **{best}** calls ({llm})."
