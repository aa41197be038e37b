"""Greeting latency across processes: two `voicebot serve` processes behind one Redis.

As behind a load balancer, each call's voice webhook reaches one process (which prepares
the greeting: simulated OpenAI TTS, first byte after --tts-delay-ms) and its Media Stream
the other, half the calls each way. Both processes share PUBLIC_BASE_URL (the balancer's
name), the database (one SQLite file) and Redis, but not a TTS cache directory (as on two
hosts), so the stream's process finds the greeting only through the shared cache. Every
call greets a different lead by name, so no process can have the greeting from an
earlier call. Prints start → first frame percentiles (what the caller waits after the
stream starts).

    .venv/bin/python scripts/bench_greeting.py --calls 100 --redis-url redis://127.0.0.1:6379/4

The Redis database's ``voicebot:phrase:*`` keys are deleted first (the run owns them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from twilio.request_validator import RequestValidator

from voicebot.cli import migrate
from voicebot.config import load_settings
from voicebot.loadtest.report import percentile
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.serve_process import ServerProcess, spawn_server
from voicebot.testing.server import free_port
from voicebot.testing.twilio_caller import open_stream

ACCOUNT_SID = "AC" + "9" * 32
AUTH_TOKEN = "greeting-bench-token"  # noqa: S105 - the simulated account of this benchmark
LOAD_BALANCER_URL = "http://voicebot-lb.localhost"  # loopback: no production secrets needed
FIRST_NAMES = ("דנה", "יוסי", "מיכל", "אבי", "רונית", "עומר", "שירה", "איתי", "נועה", "גיל")
LAST_NAMES = ("כהן", "לוי", "מזרחי", "פרץ", "ביטון", "דהן", "אברהם", "פרידמן", "שפירא", "גבאי")
FIRST_FRAME_TIMEOUT_S = 10.0


def _env(
    tmp: Path, name: str, *, database_url: str, redis_url: str | None, sim: ProviderSim
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url or "",
        "PUBLIC_BASE_URL": LOAD_BALANCER_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "STT_BASE_URL": sim.base_url,
        "STT_API_KEY": "sim-key",
        "TTS_BASE_URL": sim.base_url,
        "TTS_API_KEY": "sim-key",
        "CONVERSATION_MODE": "stream",
        "TTS_CACHE_DIR": str(tmp / name / "tts"),
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
    }


async def _lead(http: httpx.AsyncClient, base: str, n: int) -> str:
    phone = f"+97250{7000000 + n:07d}"
    name = f"{FIRST_NAMES[n % 10]} {LAST_NAMES[(n // 10) % 10]}"
    response = await http.post(f"{base}/api/v1/leads", json={"phone": phone, "name": name})
    response.raise_for_status()
    return phone


async def _one_call(
    http: httpx.AsyncClient, webhook: ServerProcess, to: ServerProcess, phone: str, n: int
) -> float:
    """Webhook on one process, stream on the other; ms from `start` to the first frame."""
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": f"CA{n:032x}",
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
        "From": "+97233720000",
        "To": phone,
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        LOAD_BALANCER_URL + "/twilio/voice", form
    )
    response = await http.post(
        webhook.base_url + "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}
    )
    response.raise_for_status()
    stream = ET.fromstring(response.text).find("./Connect/Stream")  # noqa: S314 - our own TwiML
    if stream is None:
        raise RuntimeError(f"no <Stream> in the webhook's answer: {response.text}")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    async with open_stream(
        to.base_url,
        stream_url=stream.get("url", ""),
        parameters=parameters,
        call_sid=form["CallSid"],
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        public_base_url=LOAD_BALANCER_URL,
        record_agent_audio=False,
    ) as call:
        await call.wait_until(
            lambda: call.metrics.first_agent_media_ms is not None, FIRST_FRAME_TIMEOUT_S
        )
        return call.metrics.first_agent_media_ms or 0.0


def _row(label: str, values: list[float]) -> str:
    cells = [f"{percentile(values, q):.1f}" for q in (50, 90, 99)]
    return f"| {label} | {len(values)} | {' | '.join(cells)} | {max(values):.1f} |"


async def run(calls: int, redis_url: str, tts_delay_ms: float, *, use_redis: bool) -> int:
    redis = aioredis.from_url(redis_url)
    async for key in redis.scan_iter(match="voicebot:phrase:*"):
        await redis.delete(key)
    await redis.aclose()
    shared_redis = redis_url if use_redis else None
    sim_config = SimConfig(seed=11, tts=StageBehaviour(delay_ms=tts_delay_ms))
    with tempfile.TemporaryDirectory(prefix="bench-greeting-") as tmp_name:
        tmp = Path(tmp_name)
        database_url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        migrate(load_settings(_env_file=None, database_url=database_url))
        async with ProviderSim(sim_config) as sim, contextlib.AsyncExitStack() as stack:
            shared = {"database_url": database_url, "redis_url": shared_redis, "sim": sim}
            first = stack.enter_context(
                spawn_server(tmp / "p1", _env(tmp, "p1", **shared), port=free_port())
            )
            second = stack.enter_context(
                spawn_server(tmp / "p2", _env(tmp, "p2", **shared), port=free_port())
            )
            await asyncio.gather(first.wait_ready(), second.wait_ready())
            by_direction: dict[str, list[float]] = {"1 → 2": [], "2 → 1": []}
            async with httpx.AsyncClient(timeout=10.0) as http:
                for n in range(calls):
                    phone = await _lead(http, first.base_url, n)
                    webhook, stream = (first, second) if n % 2 == 0 else (second, first)
                    label = "1 → 2" if n % 2 == 0 else "2 → 1"
                    by_direction[label].append(await _one_call(http, webhook, stream, phone, n))
    everything = by_direction["1 → 2"] + by_direction["2 → 1"]
    where = "shared Redis" if use_redis else "no Redis (nothing shared)"
    print(
        f"Greeting start → first frame (ms), {where}, TTS first byte {tts_delay_ms:g} ms,"
        f" {calls} calls"
    )
    print("| webhook → stream | calls | p50 | p90 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, values in by_direction.items():
        print(_row(label, values))
    print(_row("all", everything))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--tts-delay-ms", type=float, default=300.0)
    parser.add_argument(
        "--no-redis", action="store_true", help="the processes share nothing (the before figure)"
    )
    args = parser.parse_args()
    return asyncio.run(
        run(args.calls, args.redis_url, args.tts_delay_ms, use_redis=not args.no_redis)
    )


if __name__ == "__main__":
    raise SystemExit(main())
