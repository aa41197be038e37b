"""Benchmark of the live call pipeline: N concurrent simulated Twilio calls against a
`voicebot serve` subprocess, with the OpenAI-compatible simulator for STT and TTS.

Prints percentiles of: greeting latency (start → first agent frame), turn latency
(end of caller speech → first agent frame), pipeline overhead (turn latency minus
endpoint silence, simulated STT delay and simulated TTS first-byte delay), barge-in
(speech onset → `clear`), agent audio after `clear`, and outbound underruns.

    .venv/bin/python scripts/bench_calls.py --calls 50 --turns 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.server import free_port
from voicebot.testing.twilio_api_sim import TwilioApiSimulator, serve_on_loopback
from voicebot.testing.twilio_caller import SimulatedCall, place_call

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-token"  # noqa: S105 - the simulated account of this benchmark
CACHE = Path(".cache/hebrew_audio")
PHRASES = ["כן, אפשר לדבר עכשיו", "כן מעניין אותי", "יש לנו בערך עשרים עובדים"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def row(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | 0 | - | - | - | - |"
    return (
        f"| {name} | {len(values)} | {pct(values, 50):.0f} | {pct(values, 90):.0f} | "
        f"{pct(values, 99):.0f} | {max(values):.0f} |"
    )


async def agent_quiet(call: SimulatedCall, quiet_s: float = 0.8) -> None:
    """Wait until the agent has said everything and stayed silent for ``quiet_s``."""
    last = call.metrics.agent_audio_ms
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        await asyncio.sleep(0.1)
        if call.playback.busy or call.metrics.agent_audio_ms != last:
            last = call.metrics.agent_audio_ms
            quiet_since = time.monotonic()


async def one_call(
    base: str, args: argparse.Namespace, audio: list[bytes], out: dict[str, list[float]]
) -> None:
    rng = random.Random()
    await asyncio.sleep(rng.random() * args.ramp_s)
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 30)
        if call.metrics.first_agent_media_ms is not None:
            out["greeting"].append(call.metrics.first_agent_media_ms)
        await agent_quiet(call)
        for turn in range(args.turns):
            speech = call.say(audio[turn % len(audio)])
            await call.wait_until(lambda s=speech: s.response_latency_ms is not None, 30)
            if speech.response_latency_ms is None:
                raise TimeoutError("no agent reply")
            out["turn"].append(speech.response_latency_ms)
            out["overhead"].append(
                speech.response_latency_ms - args.endpoint_ms - args.stt_ms - args.tts_ms
            )
            if turn < args.turns - 1:
                await agent_quiet(call)
        # Barge in on the last reply while it plays.
        await asyncio.sleep(0.2)
        barge = call.say(audio[0])
        await call.wait_until(lambda: barge.clear_latency_ms is not None, 10)
        if barge.clear_latency_ms is None:
            raise TimeoutError("no clear after barge-in")
        out["barge_in"].append(barge.clear_latency_ms)
        out["after_clear"].append(barge.audio_after_clear_ms)
        out["underruns"].append(float(call.metrics.underruns))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--ramp-s", type=float, default=5.0)
    parser.add_argument("--stt-ms", type=float, default=250.0)
    parser.add_argument("--tts-ms", type=float, default=200.0)
    parser.add_argument("--endpoint-ms", type=float, default=700.0)
    args = parser.parse_args()

    audio = [pcm16_to_ulaw(synthesize_hebrew(p, cache_dir=CACHE)) for p in PHRASES]
    config = SimConfig(
        stt=StageBehaviour(delay_ms=args.stt_ms),
        tts=StageBehaviour(delay_ms=args.tts_ms),
        tts_use_espeak=False,  # the simulator's own synthesis time must not count as ours
        seed=1,
    )
    twilio_api = TwilioApiSimulator(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    async with ProviderSim(config) as sim, serve_on_loopback(twilio_api.app) as twilio_url:
        for phrase in PHRASES:
            sim.register_phrase(phrase, synthesize_hebrew(phrase, cache_dir=CACHE), 8000)
        port = free_port()
        db = Path(tempfile.mkdtemp()) / "bench.db"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": twilio_url,
            "STT_BASE_URL": sim.base_url,
            "TTS_BASE_URL": sim.base_url,
            "STT_API_KEY": "sim-key",
            "TTS_API_KEY": "sim-key",
            "ENDPOINT_SILENCE_MS": str(int(args.endpoint_ms)),
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_MINUTE": "100000",
        }
        exe = str(Path(sys.executable).parent / "voicebot")
        # The server runs as its own process so its CPU is measured apart from the callers'.
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any call
            [exe, "serve", "--port", str(port), "--migrate"], env=env
        )
        try:
            base = f"http://127.0.0.1:{port}"
            import httpx

            for _ in range(100):
                try:
                    async with httpx.AsyncClient() as http:
                        if (await http.get(base + "/health")).status_code == 200:
                            break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            out: dict[str, list[float]] = {
                k: []
                for k in ("greeting", "turn", "overhead", "barge_in", "after_clear", "underruns")
            }
            cpu_before = _proc_cpu_s(server.pid)
            started = time.monotonic()
            results = await asyncio.gather(
                *(one_call(base, args, audio, out) for _ in range(args.calls)),
                return_exceptions=True,
            )
            wall = time.monotonic() - started
            cpu = _proc_cpu_s(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(10)
    failed = [r for r in results if isinstance(r, BaseException)]
    hangups = sum(1 for r in twilio_api.requests if r.value("Status") == "completed")
    print(
        f"\n{args.calls} concurrent calls, {args.turns} turns each; sim STT {args.stt_ms:.0f} ms, "
        f"TTS first byte {args.tts_ms:.0f} ms, endpoint {args.endpoint_ms:.0f} ms"
    )
    print(f"failed calls: {len(failed)} {[type(f).__name__ for f in failed][:5]}")
    print(f"agent hang-ups through the Twilio REST simulator: {hangups}")
    print(f"server CPU: {cpu:.1f} s over {wall:.1f} s wall ({cpu / max(wall, 1e-9):.2f} cores)")
    print("\n| metric (ms) | n | p50 | p90 | p99 | max |\n| --- | --- | --- | --- | --- | --- |")
    for key, name in (
        ("greeting", "start → first greeting frame"),
        ("turn", "end of speech → first agent frame"),
        ("overhead", "pipeline overhead"),
        ("barge_in", "speech onset → clear"),
        ("after_clear", "agent audio after clear"),
    ):
        print(row(name, out[key]))
    print(f"\noutbound underruns (caller-observed): {int(sum(out['underruns']))}")
    mean = statistics.fmean(out["overhead"]) if out["overhead"] else float("nan")
    print(f"mean overhead {mean:.1f} ms")
    return 0 if not failed else 1


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
