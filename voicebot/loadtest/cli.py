"""``voicebot loadtest`` / ``scripts/loadtest.py``: flags, run, print the report.

    voicebot loadtest --url http://127.0.0.1:8000 --auth-token $TWILIO_AUTH_TOKEN \\
        --account-sid $TWILIO_ACCOUNT_SID --calls 100 --ramp-s 20 --turns 3

Exit status: 0 when every call succeeded with no underrun, 1 otherwise, 2 on bad flags.
The runner is imported only when a load test runs, so ``voicebot --help`` stays light.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicebot.errors import ConfigError

if TYPE_CHECKING:
    from voicebot.loadtest.report import LoadReport
    from voicebot.loadtest.runner import LoadTestConfig

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_ENDPOINT_SILENCE_MS = 700.0


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the load-test flags to ``parser`` (a new one when None)."""
    p = parser or argparse.ArgumentParser(prog="loadtest", description=__doc__)
    p.add_argument("--url", default=DEFAULT_URL, help="where the server is reached")
    p.add_argument("--public-url", default=None, help="the URL the server signs (PUBLIC_BASE_URL)")
    p.add_argument(
        "--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN"), help="Twilio auth token"
    )
    p.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID", "AC" + "0" * 32))
    p.add_argument("--calls", type=int, default=10, help="simulated calls in total")
    p.add_argument("--ramp-s", type=float, default=5.0, help="spread call starts over this long")
    p.add_argument(
        "--duration-s", type=float, default=None, help="keep each call up this long after connect"
    )
    p.add_argument("--turns", type=int, default=3, help="caller utterances per call")
    p.add_argument("--barge-in-prob", type=float, default=0.0, help="chance to speak over a reply")
    p.add_argument("--noise-snr-db", type=float, default=None, help="mix white noise at this SNR")
    p.add_argument(
        "--phrases", nargs="+", default=None, help="Hebrew phrases the caller says (default: 5)"
    )
    p.add_argument("--server-pid", type=int, default=None, help="read CPU/RSS from /proc/<pid>")
    p.add_argument("--endpoint-silence-ms", type=float, default=DEFAULT_ENDPOINT_SILENCE_MS)
    p.add_argument("--stt-delay-ms", type=float, default=0.0, help="simulated STT delay")
    p.add_argument("--llm-ttft-ms", type=float, default=0.0, help="simulated LLM first token")
    p.add_argument("--tts-ttfb-ms", type=float, default=0.0, help="simulated TTS first byte")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.add_argument("--plot", type=Path, default=None, help="write a latency PNG here")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    return p


def config_from_args(args: argparse.Namespace) -> LoadTestConfig:
    """Validate flags into a :class:`LoadTestConfig`; raise :class:`ConfigError` when wrong."""
    from voicebot.loadtest.report import ConfiguredDelays
    from voicebot.loadtest.runner import LoadTestConfig
    from voicebot.loadtest.speech import DEFAULT_PHRASES

    if not args.auth_token:
        raise ConfigError("--auth-token (or TWILIO_AUTH_TOKEN) is required to sign requests")
    if args.calls < 1 or args.turns < 0 or args.ramp_s < 0:
        raise ConfigError("--calls must be ≥ 1, --turns and --ramp-s ≥ 0")
    if not 0.0 <= args.barge_in_prob <= 1.0:
        raise ConfigError("--barge-in-prob must be between 0 and 1")
    return LoadTestConfig(
        url=args.url,
        public_url=args.public_url,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        calls=args.calls,
        ramp_s=args.ramp_s,
        duration_s=args.duration_s,
        turns=args.turns,
        barge_in_prob=args.barge_in_prob,
        noise_snr_db=args.noise_snr_db,
        phrases=tuple(args.phrases or DEFAULT_PHRASES),
        server_pid=args.server_pid,
        delays=ConfiguredDelays(
            endpoint_silence_ms=args.endpoint_silence_ms,
            stt_ms=args.stt_delay_ms,
            llm_first_token_ms=args.llm_ttft_ms,
            tts_first_byte_ms=args.tts_ttfb_ms,
        ),
        seed=args.seed,
        progress=not args.quiet and sys.stderr.isatty(),
    )


async def _run(config: LoadTestConfig, plot: Path | None) -> LoadReport:
    from voicebot.loadtest.runner import LoadTest

    test = LoadTest(config)
    report = await test.run()
    if plot is not None:
        from voicebot.loadtest.plot import plot_latency

        plot_latency(
            test.samples.turn_timeline,
            plot,
            title=f"{config.calls} calls, {config.turns} turns, ramp {config.ramp_s:.0f} s",
        )
    return report


def run(args: argparse.Namespace) -> int:
    """Run the load test the parsed flags describe; print the report; return the exit status."""
    try:
        config = config_from_args(args)
        runner = _event_loop_runner()
        report = runner(_run(config, args.plot))
    except ConfigError as exc:
        print(f"loadtest: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(report.to_text())
    return 0 if report.clean else 1


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, LoadReport]], LoadReport]:
    """uvloop when installed (as uvicorn uses it), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
