"""Reading the server's CPU, RSS and frame gaps from its /metrics text and from /proc."""

from __future__ import annotations

import math
import os
import subprocess
import sys

from prometheus_client import generate_latest

from voicebot.loadtest.server_stats import parse_metrics, read_proc
from voicebot.metrics import Metrics


def test_parse_metrics_reads_the_process_collector_and_frame_gaps() -> None:
    """The app registry exposes process CPU and RSS; the parser picks them, gaps and loop lag."""
    metrics = Metrics()
    metrics.inbound_frame_gaps.inc(3)
    metrics.loop_lag_worst.set(0.025)
    reading = parse_metrics(generate_latest(metrics.registry).decode())
    assert reading.cpu_s > 0
    assert reading.rss_bytes > 1024 * 1024
    assert reading.inbound_frame_gaps == 3
    assert reading.loop_lag_worst_ms == 25.0


def test_parse_metrics_without_the_figures_is_nan() -> None:
    """A /metrics page without process metrics leaves the figures unknown."""
    reading = parse_metrics("# HELP other_total x\n# TYPE other_total counter\nother_total 1\n")
    assert math.isnan(reading.cpu_s) and math.isnan(reading.rss_bytes)


def test_read_proc_matches_this_process() -> None:
    """/proc/<pid> gives this process's CPU time with its reaped children's, and its RSS."""
    subprocess.run(  # a child that burns CPU, then is reaped
        [sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True
    )
    before = os.times()
    reading = read_proc(os.getpid())
    after = os.times()
    children_s = before.children_user + before.children_system
    assert children_s > 0.05
    tick_s = 0.01
    assert before.user + before.system + children_s - tick_s * 2 <= reading.cpu_s
    assert reading.cpu_s <= after.user + after.system + children_s + tick_s * 2
    assert reading.rss_bytes > 1024 * 1024
