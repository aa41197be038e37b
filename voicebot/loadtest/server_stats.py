"""The server's CPU time, resident memory and inbound frame gaps, read from outside.

Two sources: the server's own ``/metrics`` (``process_cpu_seconds_total``,
``process_resident_memory_bytes``, ``voicebot_inbound_frame_gaps_total``), which
works for any reachable server but counts the server process alone, or
``/proc/<pid>`` when the caller started the server itself and knows its pid
(Linux only): that CPU also counts the children the server ran and reaped
(espeak-ng), and frame gaps still come from ``/metrics``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

METRICS_PATH = "/metrics"
METRICS_TIMEOUT_S = 5.0
CPU_METRIC = "process_cpu_seconds"
RSS_METRIC = "process_resident_memory_bytes"
FRAME_GAPS_METRIC = "voicebot_inbound_frame_gaps"
LOOP_LAG_WORST_METRIC = "voicebot_event_loop_lag_worst_seconds"
MS_PER_S = 1000.0
PROC_STAT_UTIME_FIELD = 11
"""Index of utime among the fields after ``(comm)`` in /proc/<pid>/stat.

stime, cutime and cstime follow: the last two are the CPU of children the server
waited for (espeak-ng synthesis runs as a child process per sentence)."""
PROC_STAT_CPU_FIELDS = 4
PROC_STATM_RSS_FIELD = 1


@dataclass(frozen=True, slots=True)
class ServerReading:
    """One reading; NaN where the source does not say."""

    cpu_s: float = math.nan
    rss_bytes: float = math.nan
    inbound_frame_gaps: float = math.nan
    loop_lag_worst_ms: float = math.nan
    """The server's worst event-loop lag since it started (its own gauge)."""


_SAMPLE_NAMES = (
    CPU_METRIC + "_total",
    RSS_METRIC,
    FRAME_GAPS_METRIC + "_total",
    LOOP_LAG_WORST_METRIC,
)


def parse_metrics(text: str) -> ServerReading:
    """Pick the process and frame-gap figures out of Prometheus exposition text."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in (CPU_METRIC, RSS_METRIC, FRAME_GAPS_METRIC, LOOP_LAG_WORST_METRIC):
            for sample in family.samples:
                if sample.name in _SAMPLE_NAMES:
                    values[family.name] = sample.value
    return ServerReading(
        cpu_s=values.get(CPU_METRIC, math.nan),
        rss_bytes=values.get(RSS_METRIC, math.nan),
        inbound_frame_gaps=values.get(FRAME_GAPS_METRIC, math.nan),
        loop_lag_worst_ms=values.get(LOOP_LAG_WORST_METRIC, math.nan) * MS_PER_S,
    )


def read_proc(pid: int) -> ServerReading:
    """CPU (user + system, its own and its reaped children's) and RSS of ``pid`` from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    fields = stat[PROC_STAT_UTIME_FIELD : PROC_STAT_UTIME_FIELD + PROC_STAT_CPU_FIELDS]
    cpu_s = sum(int(f) for f in fields) / ticks_per_s
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[PROC_STATM_RSS_FIELD])
    return ServerReading(cpu_s=cpu_s, rss_bytes=float(pages * os.sysconf("SC_PAGE_SIZE")))


class ServerStats:
    """Reads the server through ``/metrics`` (and ``/proc/<pid>`` when ``pid`` is given)."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, *, pid: int | None = None) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + METRICS_PATH
        self._pid = pid

    async def read(self) -> ServerReading:
        """The freshest reading; NaN fields when the server does not expose them."""
        from_metrics = ServerReading()
        try:
            response = await self._http.get(self._url, timeout=METRICS_TIMEOUT_S)
            if response.status_code == httpx.codes.OK:
                from_metrics = parse_metrics(response.text)
        except httpx.HTTPError:
            pass  # An unreachable /metrics leaves the figures unknown (NaN), not wrong.
        if self._pid is None:
            return from_metrics
        proc = read_proc(self._pid)
        return ServerReading(
            cpu_s=proc.cpu_s,
            rss_bytes=proc.rss_bytes,
            inbound_frame_gaps=from_metrics.inbound_frame_gaps,
            loop_lag_worst_ms=from_metrics.loop_lag_worst_ms,
        )


def stall_summary(exposition: str) -> str:
    """GC pauses by generation (count, total, the bucket every pause fits in) and the
    worst event-loop lag, from the server's Prometheus text."""
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    worst_lag = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            gen = sample.labels.get("generation", "?")
            if sample.name == "voicebot_event_loop_lag_worst_seconds":
                worst_lag = sample.value
            elif sample.name == "voicebot_gc_pause_seconds_count":
                counts[gen] = sample.value
            elif sample.name == "voicebot_gc_pause_seconds_sum":
                sums[gen] = sample.value
            elif sample.name == "voicebot_gc_pause_seconds_bucket":
                buckets.setdefault(gen, []).append((float(sample.labels["le"]), sample.value))
    parts = []
    for gen in sorted(counts):
        top = next((le for le, n in sorted(buckets.get(gen, [])) if n >= counts[gen]), 0.0)
        parts.append(
            f"gc gen{gen} {counts[gen]:.0f}× {sums.get(gen, 0.0) * 1000:.0f} ms "
            f"(all ≤ {top * 1000:g} ms)"
        )
    return f"{', '.join(parts) or 'no gc'}; worst loop lag {worst_lag * 1000:.1f} ms"
