"""Report maths of the load generator: percentiles, overhead, CPU per call-minute, memory."""

from __future__ import annotations

import json
import math

import pytest

from voicebot.loadtest.report import (
    ConfiguredDelays,
    Distribution,
    Samples,
    ServerUsage,
    build_report,
    cpu_per_call_minute,
    memory_per_call_mib,
    percentile,
    pipeline_overhead_ms,
)

MIB = 1024 * 1024


def test_percentile_is_nearest_rank() -> None:
    """p50/p90/p99 of 1..100 are 50/90/99; every answer is an observed sample."""
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50, 90, 99)
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == 4.0


def test_percentile_of_nothing_is_nan_and_bad_q_raises() -> None:
    """An empty sample has no percentile; q outside (0, 100] is a programming error."""
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 0)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_distribution_summarises_count_percentiles_and_max() -> None:
    """Distribution.of reports n, p50, p90, p99 and max of the samples."""
    dist = Distribution.of([10.0, 30.0, 20.0])
    assert dist == Distribution(n=3, p50_ms=20.0, p90_ms=30.0, p99_ms=30.0, max_ms=30.0)
    assert Distribution.of([]).n == 0 and math.isnan(Distribution.of([]).max_ms)


def test_overhead_subtracts_every_configured_delay_and_the_endpoint_silence() -> None:
    """Overhead = turn latency − (endpoint silence + STT + LLM first token + TTS first byte)."""
    delays = ConfiguredDelays(
        endpoint_silence_ms=700, stt_ms=250, llm_first_token_ms=350, tts_first_byte_ms=200
    )
    assert delays.total_ms == 1500
    assert pipeline_overhead_ms(1540.0, delays) == 40.0
    assert pipeline_overhead_ms(760.0, ConfiguredDelays()) == 60.0


def test_cpu_per_call_minute_and_memory_per_call() -> None:
    """CPU seconds divide by call-minutes, RSS growth by calls; no calls gives NaN."""
    assert cpu_per_call_minute(30.0, 60.0) == 0.5
    assert math.isnan(cpu_per_call_minute(1.0, 0.0))
    assert memory_per_call_mib(100 * MIB, 300 * MIB, 200) == 1.0
    assert math.isnan(memory_per_call_mib(0, MIB, 0))


def test_build_report_counts_failures_and_underruns_against_clean() -> None:
    """Failed calls and underruns make a report unclean; call-seconds become call-minutes."""
    samples = Samples(turn_ms=[800.0, 900.0], greeting_ms=[5.0], underruns=1, calls_ok=2)
    samples.failures["no reply"] += 1
    samples.call_seconds = 120.0
    report = build_report(
        calls=3,
        samples=samples,
        wall_s=10.0,
        frame_delays_ms=[1.0, 2.0],
        server=ServerUsage(cpu_s=3.0, rss_before_bytes=100 * MIB, rss_with_calls_bytes=104 * MIB),
        loadgen_cpu_s=1.0,
        delays=ConfiguredDelays(endpoint_silence_ms=700),
        memory_calls=2,
    )
    assert report.calls_failed == 1 and report.failure_reasons == {"no reply": 1}
    assert report.call_minutes == 2.0
    assert report.server_cpu_s_per_call_minute == 1.5
    assert report.server_memory_per_call_mib == 2.0
    assert report.overhead.p50_ms == 100.0 and report.overhead.max_ms == 200.0
    assert report.loadgen_cores == 0.1
    assert not report.clean


def test_json_report_has_no_nan() -> None:
    """Unknown figures (no barge-in, no server reading) become null, so the JSON is valid."""
    report = build_report(
        calls=1,
        samples=Samples(calls_ok=1, call_seconds=60.0),
        wall_s=1.0,
        frame_delays_ms=[],
        server=ServerUsage(),
        loadgen_cpu_s=0.0,
        delays=ConfiguredDelays(),
        memory_calls=0,
    )
    data = report.to_json()
    text = json.dumps(data, allow_nan=False)
    assert data["clean"] is True and data["server_cpu_s"] is None
    assert data["barge_in_clear"]["p99_ms"] is None
    assert "NaN" not in text
    assert "calls: 1 ok, 0 failed" in report.to_text()
