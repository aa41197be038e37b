"""The figures of a load test, computed from raw samples, and their text, JSON and markdown forms.

Percentiles use the nearest-rank method (the smallest sample with at least
q % of the samples at or below it), so every reported value was observed.
Pipeline overhead is turn latency minus the delays the simulators were told
to add (STT, LLM first token, TTS first byte) and minus the endpoint silence.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

S_PER_MINUTE = 60.0
BYTES_PER_MIB = 1024 * 1024
PERCENTILES = (50, 90, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0–100] of ``values``; NaN when empty."""
    if not values:
        return math.nan
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {q}")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Count, p50, p90, p99 and max of one latency, in milliseconds."""

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Distribution:
        return cls(
            n=len(values_ms),
            p50_ms=percentile(values_ms, 50),
            p90_ms=percentile(values_ms, 90),
            p99_ms=percentile(values_ms, 99),
            max_ms=max(values_ms) if values_ms else math.nan,
        )


@dataclass(frozen=True, slots=True)
class ConfiguredDelays:
    """What the simulators add to every turn on purpose (0 for a stage not in the path)."""

    endpoint_silence_ms: float = 700.0
    stt_ms: float = 0.0
    llm_first_token_ms: float = 0.0
    tts_first_byte_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return (
            self.endpoint_silence_ms
            + self.stt_ms
            + self.llm_first_token_ms
            + self.tts_first_byte_ms
        )


def pipeline_overhead_ms(turn_latency_ms: float, delays: ConfiguredDelays) -> float:
    """Turn latency minus the configured simulator delays and the endpoint silence."""
    return turn_latency_ms - delays.total_ms


def cpu_per_call_minute(cpu_s: float, call_minutes: float) -> float:
    """Core-seconds of server CPU per minute of connected call; NaN without call time."""
    if call_minutes <= 0:
        return math.nan
    return cpu_s / call_minutes


def memory_per_call_mib(rss_before_bytes: float, rss_with_calls_bytes: float, calls: int) -> float:
    """(RSS with ``calls`` connected − RSS before) / calls, in MiB; NaN without calls."""
    if calls <= 0:
        return math.nan
    return (rss_with_calls_bytes - rss_before_bytes) / calls / BYTES_PER_MIB


@dataclass(slots=True)
class Samples:
    """Raw observations collected while the calls run (mutable, appended to by the runner)."""

    greeting_ms: list[float] = field(default_factory=list)
    turn_ms: list[float] = field(default_factory=list)
    barge_in_clear_ms: list[float] = field(default_factory=list)
    audio_after_clear_ms: list[float] = field(default_factory=list)
    turn_timeline: list[tuple[float, int, float]] = field(default_factory=list)
    """(seconds since the test began, calls connected then, turn latency ms)."""
    underruns: int = 0
    calls_ok: int = 0
    ended_by_agent: int = 0
    """Calls the server closed normally after a reply (the agent said goodbye): not failures."""
    failures: Counter[str] = field(default_factory=Counter)
    failed_calls: list[dict[str, Any]] = field(default_factory=list)
    """One entry per failed call that reached the stream: call SID, reason, close code,
    seconds after connecting; to find the call in the server's logs."""
    calls_dropped: int = 0
    """Calls the server cut: closed without the agent's goodbye, an error close code, or a
    transport failure mid-call (a call that merely had an unanswered turn is not one)."""
    turns_asked: int = 0
    """Caller turns spoken; those without agent audio in reply are unanswered."""
    call_seconds: float = 0.0
    peak_concurrency: int = 0


@dataclass(frozen=True, slots=True)
class ServerUsage:
    """The server's resource use over the measured window (NaN when unknown)."""

    cpu_s: float = math.nan
    rss_before_bytes: float = math.nan
    rss_with_calls_bytes: float = math.nan
    inbound_frame_gaps: float = math.nan
    loop_lag_worst_ms: float = math.nan


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Everything one load test measured; :meth:`to_json` is the ``--json`` output."""

    calls: int
    calls_ok: int
    calls_failed: int
    failure_reasons: dict[str, int]
    calls_ended_by_agent: int
    calls_dropped: int
    turns_asked: int
    turns_unanswered: int
    wall_s: float
    call_minutes: float
    peak_concurrency: int
    greeting: Distribution
    turn: Distribution
    overhead: Distribution
    barge_in_clear: Distribution
    audio_after_clear_ms_max: float
    underruns: int
    frame_delay: Distribution
    """Per tick, how late the last call's inbound frame left the load generator."""
    server_cpu_s: float
    server_cpu_s_per_call_minute: float
    server_memory_per_call_mib: float
    server_rss_before_mib: float
    server_rss_with_calls_mib: float
    server_inbound_frame_gaps: float
    server_loop_lag_worst_ms: float
    """The server's own worst event-loop lag gauge at the end (since it started)."""
    loadgen_cpu_s: float
    loadgen_cores: float
    delays: ConfiguredDelays
    failed_calls: list[dict[str, Any]] = field(default_factory=list)
    """Call SID, reason, close code and seconds connected of each failed call."""

    @property
    def clean(self) -> bool:
        """No failed call and no outbound underrun."""
        return self.calls_failed == 0 and self.underruns == 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        return {k: _finite(v) for k, v in data.items()}

    def to_text(self) -> str:
        lines = [
            f"calls: {self.calls_ok} ok, {self.calls_failed} failed"
            + (f" {dict(self.failure_reasons)}" if self.failure_reasons else "")
            + f"; {self.calls_ended_by_agent} ended by the agent; {self.calls_dropped} dropped",
            f"caller turns: {self.turns_asked}, unanswered {self.turns_unanswered}",
            f"wall {self.wall_s:.1f} s, {self.call_minutes:.1f} call-minutes, "
            f"peak {self.peak_concurrency} concurrent",
            "",
            "| latency (ms) | n | p50 | p90 | p99 | max |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, dist in (
            ("greeting (start → first agent audio)", self.greeting),
            ("turn (end of speech → first agent audio)", self.turn),
            (f"pipeline overhead (turn − {self.delays.total_ms:.0f})", self.overhead),
            ("barge-in → clear", self.barge_in_clear),
            ("inbound frame delay (load generator)", self.frame_delay),
        ):
            lines.append(_row(name, dist))
        lines += [
            "",
            f"outbound underruns: {self.underruns}; agent audio after clear max "
            f"{_fmt(self.audio_after_clear_ms_max)} ms; server inbound frame gaps: "
            f"{_fmt(self.server_inbound_frame_gaps)}; server worst loop lag "
            f"{_fmt(self.server_loop_lag_worst_ms)} ms",
            f"server CPU: {_fmt(self.server_cpu_s, 1)} s = "
            f"{_fmt(self.server_cpu_s_per_call_minute, 3)} core-s per call-minute; "
            f"RSS {_fmt(self.server_rss_before_mib)} → {_fmt(self.server_rss_with_calls_mib)} MiB "
            f"at peak = {_fmt(self.server_memory_per_call_mib, 2)} MiB per call",
            f"load generator CPU: {self.loadgen_cpu_s:.1f} s = {self.loadgen_cores:.2f} cores",
        ]
        return "\n".join(lines)


def _row(name: str, dist: Distribution) -> str:
    return (
        f"| {name} | {dist.n} | {_fmt(dist.p50_ms)} | {_fmt(dist.p90_ms)} | "
        f"{_fmt(dist.p99_ms)} | {_fmt(dist.max_ms)} |"
    )


def _fmt(value: float, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _finite(value: Any) -> Any:
    """JSON has no NaN: unknown figures become null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def build_report(
    *,
    calls: int,
    samples: Samples,
    wall_s: float,
    frame_delays_ms: Sequence[float],
    server: ServerUsage,
    loadgen_cpu_s: float,
    delays: ConfiguredDelays,
    memory_calls: int,
) -> LoadReport:
    """Reduce raw samples and resource readings to a :class:`LoadReport`."""
    call_minutes = samples.call_seconds / S_PER_MINUTE
    failed = calls - samples.calls_ok
    return LoadReport(
        calls=calls,
        calls_ok=samples.calls_ok,
        calls_failed=failed,
        failure_reasons=dict(samples.failures),
        failed_calls=list(samples.failed_calls),
        calls_ended_by_agent=samples.ended_by_agent,
        calls_dropped=samples.calls_dropped,
        turns_asked=samples.turns_asked,
        turns_unanswered=samples.turns_asked - len(samples.turn_ms),
        wall_s=wall_s,
        call_minutes=call_minutes,
        peak_concurrency=samples.peak_concurrency,
        greeting=Distribution.of(samples.greeting_ms),
        turn=Distribution.of(samples.turn_ms),
        overhead=Distribution.of([pipeline_overhead_ms(t, delays) for t in samples.turn_ms]),
        barge_in_clear=Distribution.of(samples.barge_in_clear_ms),
        audio_after_clear_ms_max=max(samples.audio_after_clear_ms, default=math.nan),
        underruns=samples.underruns,
        frame_delay=Distribution.of(frame_delays_ms),
        server_cpu_s=server.cpu_s,
        server_cpu_s_per_call_minute=cpu_per_call_minute(server.cpu_s, call_minutes),
        server_memory_per_call_mib=memory_per_call_mib(
            server.rss_before_bytes, server.rss_with_calls_bytes, memory_calls
        ),
        server_rss_before_mib=server.rss_before_bytes / BYTES_PER_MIB,
        server_rss_with_calls_mib=server.rss_with_calls_bytes / BYTES_PER_MIB,
        server_inbound_frame_gaps=server.inbound_frame_gaps,
        server_loop_lag_worst_ms=server.loop_lag_worst_ms,
        loadgen_cpu_s=loadgen_cpu_s,
        loadgen_cores=loadgen_cpu_s / wall_s if wall_s > 0 else math.nan,
        delays=delays,
    )
