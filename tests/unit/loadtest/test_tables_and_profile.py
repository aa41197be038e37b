"""Benchmark tables (clean points, highest clean concurrency) and py-spy hot-spot shares."""

from __future__ import annotations

from typing import Any

from voicebot.loadtest.profile import hot_spots
from voicebot.loadtest.tables import clean, summary, talking_table

COLLAPSED = """\
<module> (voicebot/cli.py:1);run (asyncio/runners.py:118);on_media (voicebot/call/session.py:91) 6
<module> (voicebot/cli.py:1);run (asyncio/runners.py:118);process (voicebot/audio/vad.py:40) 3
<module> (voicebot/cli.py:1);select (selectors.py:468) 1
"""


def _report(calls: int, *, failed: int = 0, underruns: int = 0, p99: float = 40.0) -> Any:
    dist = {"n": 1, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "max_ms": 1.0}
    return {
        "calls": calls,
        "calls_ok": calls - failed,
        "calls_failed": failed,
        "failure_reasons": {"no reply": failed} if failed else {},
        "underruns": underruns,
        "overhead_ms": {"p50_ms": 10.0, "p90_ms": 20.0, "p99_ms": p99},
        "turn": dist,
        "greeting": dist,
        "barge_in_clear": dist,
        "frame_delay": dist,
        "server_cpu_s_per_call_minute": 0.5,
        "loadgen_cores": 0.1,
        "llm_requests": 0,
    }


def test_clean_needs_no_failure_no_underrun_and_overhead_p99_within_80_ms() -> None:
    """A point is clean only with zero failures, zero underruns and overhead p99 ≤ 80 ms."""
    assert clean(_report(10))
    assert clean(_report(10, p99=80.0))
    assert not clean(_report(10, p99=80.5))
    assert not clean(_report(10, failed=1))
    assert not clean(_report(10, underruns=1))


def test_summary_names_the_highest_clean_concurrency() -> None:
    """The summary picks the largest clean point, not the last one run."""
    reports = [_report(25), _report(50), _report(100, underruns=2), _report(200, p99=300.0)]
    assert "**50** calls" in summary("rules", reports)
    table = talking_table(reports)
    assert table.count("\n") == len(reports) + 1
    assert "| 100 | 100 (0) | 0 |" in table and table.rstrip().endswith("| no |")


def test_hot_spots_give_self_and_inclusive_shares() -> None:
    """Leaf frames make the self share, every frame on a stack the inclusive share."""
    own, inclusive = hot_spots(COLLAPSED)
    assert own[0] == ("on_media (session.py)", 60.0)
    assert own[1] == ("process (vad.py)", 30.0)
    assert dict(inclusive)["<module> (cli.py)"] == 100.0
    assert dict(inclusive)["run (runners.py)"] == 90.0
    assert hot_spots("") == ([], [])
