"""Run the OpenAI-compatible provider simulator: ``python scripts/provider_sim.py --port 8900``.

Point STT_BASE_URL / LLM_BASE_URL / TTS_BASE_URL (or OPENAI_BASE_URL) at the printed URL.
Phrases for recognition are registered at run time with ``POST /_sim/phrases``.
"""

from __future__ import annotations

import argparse
import asyncio

from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--stt-delay-ms", type=float, default=150.0)
    parser.add_argument("--llm-ttft-ms", type=float, default=300.0)
    parser.add_argument("--llm-inter-token-ms", type=float, default=20.0)
    parser.add_argument("--tts-ttfb-ms", type=float, default=150.0)
    parser.add_argument("--tts-realtime", action="store_true", help="pace audio at real time")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="± jitter on every delay")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of failed requests")
    parser.add_argument("--error-status", type=int, default=500, choices=[429, 500, 503])
    parser.add_argument("--hang", default="", help="comma-separated stages that never answer")
    parser.add_argument("--llm-garbage", action="store_true", help="send malformed SSE")
    parser.add_argument("--default-transcript", default="", help="text for unknown audio")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument("--seed", type=int, default=None)
    return parser.parse_args()


def build_config(args: argparse.Namespace) -> SimConfig:
    hung = {s.strip() for s in args.hang.split(",") if s.strip()}

    def stage(name: str, delay_ms: float) -> StageBehaviour:
        return StageBehaviour(
            delay_ms=delay_ms,
            jitter_ms=args.jitter_ms,
            error_rate=args.error_rate,
            error_status=args.error_status,
            hang=name in hung,
        )

    return SimConfig(
        stt=stage("stt", args.stt_delay_ms),
        llm=stage("llm", args.llm_ttft_ms),
        tts=stage("tts", args.tts_ttfb_ms),
        llm_inter_token_ms=args.llm_inter_token_ms,
        llm_garbage=args.llm_garbage,
        tts_realtime=args.tts_realtime,
        default_transcript=args.default_transcript,
        api_key=args.api_key,
        seed=args.seed,
    )


async def main() -> None:
    args = parse_args()
    sim = ProviderSim(build_config(args))
    base_url = await sim.start(args.host, args.port)
    print(f"provider simulator on {base_url} (Ctrl-C to stop)", flush=True)
    await sim.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
