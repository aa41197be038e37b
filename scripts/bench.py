"""The standard benchmark: the load generator against `voicebot serve`, scenario by scenario.

For every scenario and concurrency it starts a fresh `voicebot serve` subprocess
(one process, its own SQLite file or Postgres database), runs one warm-up call,
then ``scripts/loadtest.py --json --server-pid`` as a third process, so the server,
the load generator and the simulators (the OpenAI-compatible ProviderSim and the
Twilio REST simulator, both in this process) each have their CPU measured apart.

Scenarios:
  rules      rule-based brain + espeak-ng TTS in the server; the simulator's STT
             (no added delay) stands in for speech recognition
  openai     simulated OpenAI: STT 250 ms, LLM first token 350 ms, TTS first byte 200 ms
  faults     openai with injected faults: TTS 10 % errors, STT 5 % errors, LLM 5 % hangs
             (the report counts dropped calls and unanswered caller turns)
  listening  callers that never speak (CPU per call-minute listening, memory per idle call)
  latency    issue #14's turn-latency scenario, 3 turns per call, no barge-in, the server's
             defaults (speculation, adaptive endpointing): LLM mode with batch STT at the
             simulator's STT 250 ms, LLM first token 350 ms + 15 ms per token, TTS first
             byte 200 ms; reports premature cut-offs (caller utterances the server heard
             beyond the phrases said) and wasted speculative requests from /metrics
  latency-stream  the same with streaming STT (STT_MODE=streaming: the simulator's
             Realtime transcription socket, final 150 ms after each commit)
  latency-rules  the same with the rule brain and espeak-ng (simulated STT, no delay)

    .venv/bin/python scripts/bench.py                      # everything, ~25 min
    .venv/bin/python scripts/bench.py --scenarios rules --points 1,50 --duration-s 30

Prints markdown tables ready for BENCHMARKS.md and writes every raw report to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from voicebot.loadtest.profile import hot_spots_table
from voicebot.loadtest.server_stats import stall_summary
from voicebot.loadtest.speech import AUDIO_CACHE_DIR, DEFAULT_PHRASES
from voicebot.loadtest.tables import clean, fmt, listening_table, summary, talking_table
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.server import free_port
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-token"  # noqa: S105 - the simulated account of this benchmark
ENDPOINT_SILENCE_MS = 700
SERVER_START_TIMEOUT_S = 120.0
"""Importing the server alone took 37 s on the shared 2-core machine at load 14."""
SERVER_STOP_TIMEOUT_S = 15.0
SILENCE_CHECKIN_S = 600
"""No silence check-ins while callers hold the line: the scenario, not the brain, ends calls."""
LOADTEST_EXTRA_S = 120.0
"""Budget on top of ramp + duration before a load-test subprocess is killed."""
BYTES_PER_MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    stt_ms: float
    llm_ms: float
    tts_ms: float
    use_llm_tts: bool
    turns: int
    barge_in_prob: float
    # Injected faults: share of requests per stage that fail (STT, TTS) or hang (LLM).
    stt_error_rate: float = 0.0
    llm_hang_rate: float = 0.0
    tts_error_rate: float = 0.0
    llm_inter_token_ms: float = 0.0
    # The server's own turn-taking defaults (no ENDPOINT_SILENCE_MS override).
    server_defaults: bool = False
    server_env: tuple[tuple[str, str], ...] = ()


SCENARIOS = {
    "rules": Scenario("rules", 0, 0, 0, use_llm_tts=False, turns=5, barge_in_prob=0.25),
    "openai": Scenario("openai", 250, 350, 200, use_llm_tts=True, turns=5, barge_in_prob=0.25),
    # Issue #10's done-when: TTS 10 % errors, STT 5 % errors, LLM 5 % hangs; 0 calls
    # dropped and every caller turn answered with audio.
    "faults": Scenario(
        "faults",
        250,
        350,
        200,
        use_llm_tts=True,
        turns=5,
        barge_in_prob=0.25,
        stt_error_rate=0.05,
        llm_hang_rate=0.05,
        tts_error_rate=0.10,
    ),
    "listening": Scenario("listening", 0, 0, 0, use_llm_tts=False, turns=0, barge_in_prob=0.0),
    "latency": Scenario(
        "latency",
        250,
        350,
        200,
        use_llm_tts=True,
        turns=3,
        barge_in_prob=0.0,
        llm_inter_token_ms=15,
        server_defaults=True,
    ),
    "latency-stream": Scenario(
        "latency-stream",
        250,
        350,
        200,
        use_llm_tts=True,
        turns=3,
        barge_in_prob=0.0,
        llm_inter_token_ms=15,
        server_defaults=True,
        server_env=(("STT_MODE", "streaming"),),
    ),
    "latency-rules": Scenario(
        "latency-rules",
        0,
        0,
        0,
        use_llm_tts=False,
        turns=3,
        barge_in_prob=0.0,
        server_defaults=True,
    ),
}
# /metrics counters the latency scenarios report (before/after differences).
SPECULATION_COUNTERS = (
    "voicebot_caller_utterances_total",
    "voicebot_speculative_turns_total",
    "voicebot_speculative_wasted_requests_total",
    "voicebot_speculative_wasted_reply_words_total",
    "voicebot_speculative_partial_replies_total",
)


def server_env(
    args: argparse.Namespace,
    scenario: Scenario,
    sim_url: str,
    twilio_url: str,
    port: int,
    database_url: str,
) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("STT_", "LLM_", "TTS_", "OPENAI_"))
    }
    env.update(
        DATABASE_URL=database_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_API_BASE_URL=twilio_url,
        STT_BASE_URL=sim_url,
        STT_API_KEY="sim-key",
        SILENCE_CHECKIN_S=str(SILENCE_CHECKIN_S),
        LOG_LEVEL=args.server_log_level,
        LOG_FORMAT="json",
        RATE_LIMIT_PER_MINUTE="1000000",
        TTS_CACHE_DIR=str(Path(tempfile.gettempdir()) / "voicebot-bench-tts"),
    )
    env.pop("REDIS_URL", None)
    if not scenario.server_defaults:
        env["ENDPOINT_SILENCE_MS"] = str(ENDPOINT_SILENCE_MS)
    env.update(scenario.server_env)
    env.update(args.server_env)
    if scenario.use_llm_tts:
        env.update(LLM_BASE_URL=sim_url, LLM_API_KEY="sim-key")
        env.update(TTS_BASE_URL=sim_url, TTS_API_KEY="sim-key")
        # Every turn pays the simulated TTS delay that the overhead figure subtracts
        # (the simulator's replies repeat, and a remembered sentence would skip TTS).
        env.update(TTS_REUSE_SENTENCES="false")
    return env


async def create_database(args: argparse.Namespace, label: str) -> str:
    if args.db == "sqlite":
        return f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / (label + '.db')}"
    import asyncpg

    name = f"voicebot_bench_{label}_{os.getpid()}"
    conn = await asyncpg.connect(args.postgres_admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base: str = args.postgres_admin.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def start_server(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    server = await asyncio.create_subprocess_exec(
        str(BIN / "voicebot"), "serve", "--port", str(port), "--migrate", env=env, cwd=ROOT
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if server.returncode is not None:
                raise RuntimeError(f"voicebot serve exited with {server.returncode} at start")
            await asyncio.sleep(0.2)
    await stop_server(server)
    raise RuntimeError("voicebot serve did not become healthy")


async def stop_server(server: asyncio.subprocess.Process) -> None:
    if server.returncode is None:
        server.terminate()
        try:
            await asyncio.wait_for(server.wait(), SERVER_STOP_TIMEOUT_S)
        except TimeoutError:
            server.kill()
            await server.wait()


async def loadtest(
    port: int,
    pid: int,
    scenario: Scenario,
    calls: int,
    *,
    ramp_s: float,
    duration_s: float | None,
    turns: int,
    seed: int,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "loadtest.py"),
        "--json",
        "--quiet",
        "--url",
        f"http://127.0.0.1:{port}",
        "--auth-token",
        AUTH_TOKEN,
        "--account-sid",
        ACCOUNT_SID,
        "--calls",
        str(calls),
        "--ramp-s",
        str(ramp_s),
        "--turns",
        str(turns),
        "--barge-in-prob",
        str(scenario.barge_in_prob),
        "--server-pid",
        str(pid),
        "--endpoint-silence-ms",
        str(ENDPOINT_SILENCE_MS),
        "--seed",
        str(seed),
    ]
    if duration_s is not None:
        cmd += ["--duration-s", str(duration_s)]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    budget_s = ramp_s + (duration_s or 0) + LOADTEST_EXTRA_S + turns * 20
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(), budget_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    report: dict[str, Any] = json.loads(stdout)
    return report


async def run_point(
    args: argparse.Namespace, scenario: Scenario, calls: int, sim: ProviderSim, twilio_url: str
) -> dict[str, Any]:
    port = free_port()
    label = f"{scenario.name}_{calls}"
    database_url = await create_database(args, label)
    env = server_env(args, scenario, sim.base_url, twilio_url, port, database_url)
    server = await start_server(env, port)
    profiler = None
    try:
        await loadtest(port, server.pid, scenario, 1, ramp_s=0, duration_s=None, turns=1, seed=0)
        llm_before = sim.requests["llm"]
        counters_before = await scrape_counters(port)
        sim_before = dict(sim.requests)
        ramp_s = min(args.ramp_s, max(1.0, calls / 10))
        if args.profile_calls == calls and scenario.name in args.profile_scenarios:
            profiler = await start_profiler(args, server.pid, label)
        report = await loadtest(
            port,
            server.pid,
            scenario,
            calls,
            ramp_s=ramp_s,
            duration_s=args.duration_s,
            turns=scenario.turns,
            seed=calls,
        )
        report["llm_requests"] = sim.requests["llm"] - llm_before
        counters_after = await scrape_counters(port)
        # GC pauses and the worst loop lag since start-up (the warm-up call included).
        report["stalls"] = stall_summary(await metrics_text(port))
        report["counters"] = {k: v - counters_before.get(k, 0.0) for k, v in counters_after.items()}
        # Requests per stage the simulator saw, and those whose client left before the
        # body arrived (an upload that stalled in the server, or a cancelled request).
        report["sim_requests"] = {
            key: count - sim_before.get(key, 0) for key, count in sim.requests.items()
        }
    finally:
        if profiler is not None:
            profiler.send_signal(2)
            await profiler.wait()
        await stop_server(server)
    llm_in_path = report["llm_requests"] > 0
    delay_ms = ENDPOINT_SILENCE_MS + scenario.stt_ms + scenario.tts_ms
    delay_ms += scenario.llm_ms if llm_in_path else 0
    turn = report["turn"]
    report["overhead_ms"] = {k: _minus(turn[k], delay_ms) for k in ("p50_ms", "p90_ms", "p99_ms")}
    report["overhead_ms"]["subtracted_ms"] = delay_ms
    report["scenario"] = scenario.name
    return report


async def metrics_text(port: int) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


async def scrape_counters(port: int) -> dict[str, float]:
    """The speculation counters of the server's /metrics, one value per label set."""
    text = await metrics_text(port)
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(SPECULATION_COUNTERS):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def latency_table(reports: list[dict[str, Any]]) -> str:
    """Issue #14's figures: turn latency, premature cut-offs, wasted speculative requests."""
    rows = [
        "| calls | turns | turn p50 | p90 | p99 ms | premature cut-offs | speculations used"
        " / dropped | partial replies kept / redone | wasted requests (STT/LLM/TTS) | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for report in reports:
        counters = report.get("counters", {})

        def count(prefix: str, counters: dict[str, float] = counters) -> float:
            return sum(v for k, v in counters.items() if k.startswith(prefix))

        utterances = count("voicebot_caller_utterances_total")
        premature = max(0, round(utterances - report["turns_asked"]))
        used = count('voicebot_speculative_turns_total{outcome="used"}')
        dropped = count("voicebot_speculative_turns_total") - used
        wasted = "/".join(
            str(round(count(f'voicebot_speculative_wasted_requests_total{{stage="{stage}"}}')))
            for stage in ("stt", "llm", "tts")
        )
        kept = count('voicebot_speculative_partial_replies_total{outcome="kept"}')
        redone = count('voicebot_speculative_partial_replies_total{outcome="redone"}')
        turn = report["turn"]
        rows.append(
            f"| {report['calls']} | {report['turns_asked']} | {fmt(turn['p50_ms'])} | "
            f"{fmt(turn['p90_ms'])} | {fmt(turn['p99_ms'])} | {premature} | "
            f"{round(used)} / {round(dropped)} | {round(kept)} / {round(redone)} | {wasted} | "
            f"{report.get('load', '')} |"
        )
    return "\n".join(rows)


def _per_turn_ms(report: dict[str, Any]) -> str:
    """Server CPU per caller turn asked: comparable across latencies, unlike CPU per
    call-minute (a call lasts ``--duration-s`` or its turns, whichever is longer, so faster
    turns pack the same work into fewer call-minutes)."""
    cpu_s, turns = report.get("server_cpu_s"), report.get("turns_asked")
    return "-" if cpu_s is None or not turns else f"{1000 * cpu_s / turns:.1f}"


def _minus(value: float | None, delay_ms: float) -> float | None:
    return None if value is None else value - delay_ms


async def start_profiler(args: argparse.Namespace, pid: int, label: str) -> Any:
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    out = args.profile_dir / f"{label}.txt"
    args.profile_dir.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        py_spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
    )


async def main() -> int:
    args = parse_args()
    sim_config = SimConfig(tts_use_espeak=False, seed=1)
    twilio_api = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    results: dict[str, list[dict[str, Any]]] = {}
    async with ProviderSim(sim_config) as sim, serve_on_loopback(twilio_api.app) as twilio_url:
        for phrase in DEFAULT_PHRASES:
            pcm = await asyncio.to_thread(synthesize_hebrew, phrase, cache_dir=AUDIO_CACHE_DIR)
            sim.register_phrase(phrase, pcm, 8000)
        for name in args.scenarios:
            scenario = SCENARIOS[name]
            sim.config.stt = StageBehaviour(
                delay_ms=scenario.stt_ms, error_rate=scenario.stt_error_rate
            )
            sim.config.llm = StageBehaviour(
                delay_ms=scenario.llm_ms, hang_rate=scenario.llm_hang_rate
            )
            sim.config.tts = StageBehaviour(
                delay_ms=scenario.tts_ms, error_rate=scenario.tts_error_rate
            )
            sim.config.llm_inter_token_ms = scenario.llm_inter_token_ms
            points = args.listening_points if name == "listening" else args.points
            for calls in points:
                started = time.monotonic()
                cpu_before = time.process_time()
                try:
                    report = await run_point(args, scenario, calls, sim, twilio_url)
                except (RuntimeError, TimeoutError, json.JSONDecodeError) as exc:
                    # One broken point (a server that cannot start) must not lose the others.
                    print(f"{name} {calls}: point failed: {exc!r}", file=sys.stderr, flush=True)
                    continue
                report["sims_cores"] = (time.process_time() - cpu_before) / (
                    time.monotonic() - started
                )
                report["load"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
                results.setdefault(name, []).append(report)
                print(
                    f"{name} {calls}: ok {report['calls_ok']}/{calls}, dropped "
                    f"{report['calls_dropped']}, unanswered turns {report['turns_unanswered']}"
                    f"/{report['turns_asked']}, turn p50/p99 {fmt(report['turn']['p50_ms'])}/"
                    f"{fmt(report['turn']['p99_ms'])} ms, overhead p99 "
                    f"{fmt(report['overhead_ms']['p99_ms'])} ms, underruns "
                    f"{report['underruns']}, clean {clean(report)}, server CPU "
                    f"{_per_turn_ms(report)} ms per caller turn, "
                    f"{fmt(report['server_cpu_s_per_call_minute'], 2)} s per call-minute, "
                    f"load {report['load']}, simulator saw "
                    f"{report['sim_requests']}; server {report['stalls']}",
                    file=sys.stderr,
                    flush=True,
                )
                args.out.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    print_tables(args, results)
    return 0


def print_tables(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    for name, reports in results.items():
        print(f"\n### {name}\n")
        if name == "listening":
            print(listening_table(reports))
        elif name.startswith("latency"):
            print(latency_table(reports))
        else:
            print(talking_table(reports))
            print("\n" + summary(name, reports))
    for raw in sorted(args.profile_dir.glob("*.txt")) if args.profile_dir.exists() else []:
        print(f"\n### Profile {raw.stem} (py-spy, % of samples)\n")
        print(hot_spots_table(raw))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios",
        type=lambda s: s.split(","),
        default=[n for n in SCENARIOS if not n.startswith("latency")],
    )
    parser.add_argument("--points", type=_ints, default=[1, 25, 50, 100, 200])
    parser.add_argument("--listening-points", type=_ints, default=[100, 200])
    parser.add_argument("--duration-s", type=float, default=60.0, help="each call lasts ≥ this")
    parser.add_argument("--ramp-s", type=float, default=20.0, help="longest ramp-up")
    parser.add_argument(
        "--server-log-level", default="WARNING", help="the server's LOG_LEVEL (its stderr)"
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--profile-calls", type=int, default=0, help="py-spy the server at N")
    parser.add_argument("--profile-scenarios", type=lambda s: s.split(","), default=["rules"])
    parser.add_argument("--profile-dir", type=Path, default=Path(".cache/bench-profile"))
    parser.add_argument("--out", type=Path, default=Path(".cache/bench-results.json"))
    parser.add_argument(
        "--server-env",
        type=lambda s: dict(kv.split("=", 1) for kv in s.split(",") if kv),
        default={},
        help="extra server settings, NAME=value,NAME=value (e.g. SPECULATE_SILENCE_MS=0)",
    )
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    return args


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
