"""Streaming recognition latency: final transcript after the commit, over the Realtime
transcription websocket of the provider simulator, with the real ``openai`` client.

The simulator runs in a process of its own (a provider is remote: its recognition work
must not be charged to the client). Each simulated call opens one session (as a call
does at its start) and says --turns Hebrew phrases in 20 ms μ-law frames paced in real
time (fed 100 ms at a time, as appends go out), then 700 ms of line silence (the
endpointer's wait), then commits. Prints the commit → final percentiles as the client
saw them (what the turn loop waits for), the simulator's own commit → completed time,
how many utterances had a partial transcript before the commit, and recognition errors.
Expect p50 ≈ the simulator's final delay (150 ms, the issue's target) plus a few ms on
an idle machine; a loaded one (uptime) adds scheduling delay to both figures.

    .venv/bin/python scripts/bench_stt_stream.py --calls 1 --turns 10
    .venv/bin/python scripts/bench_stt_stream.py --calls 50 --turns 4 --final-delay-ms 150
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from pydantic import SecretStr

from voicebot.audio.codec import FRAME_BYTES_ULAW, FRAME_MS, pcm16_to_ulaw
from voicebot.config import ProviderEndpoint
from voicebot.errors import ProviderError
from voicebot.loadtest.report import percentile
from voicebot.providers.openai_realtime_stt import RealtimeTranscriber
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.realtime_sim import RealtimeBehaviour

PHRASES = (
    "כן, אפשר לדבר עכשיו",
    "אנחנו חמישה אנשים",
    "בעיקר אני עונה בעצמי, והרבה שיחות הולכות לאיבוד",
    "הראשון מתאים לי",
    "לא תודה, אין לי זמן עכשיו",
)
AUDIO_CACHE = Path(".cache/hebrew_audio")
ENDPOINT_SILENCE_MS = 700
LINE_NOISE_RMS = 120.0
READY_TIMEOUT_S = 10.0
FRAMES_PER_WAKE = 5  # the caller's pacing wakes every 100 ms, not for every frame


@dataclass(slots=True)
class Outcome:
    final_ms: float
    partial_before_commit: bool
    correct: bool
    error: str | None = None


def _line(pcm16: bytes, seed: int) -> bytes:
    """The phrase as a caller's line delivers it: noise, then the endpointer's silence."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    tail = np.zeros(8 * ENDPOINT_SILENCE_MS)
    signal = np.concatenate([samples, tail])
    noise = np.random.default_rng(seed).normal(0.0, LINE_NOISE_RMS, signal.size)
    return pcm16_to_ulaw((signal + noise).clip(-32767, 32767).astype("<i2").tobytes())


async def _call(
    stt: RealtimeTranscriber, lines: list[tuple[str, bytes]], turns: int, offset: int
) -> list[Outcome]:
    session = stt.open_session()
    runner = asyncio.create_task(session.run())
    outcomes: list[Outcome] = []
    try:
        if not await session.wait_ready(READY_TIMEOUT_S):
            raise SystemExit("the session never became ready")
        for turn in range(turns):
            text, ulaw = lines[(offset + turn) % len(lines)]
            session.begin()
            next_at = time.perf_counter()
            for start in range(0, len(ulaw), FRAME_BYTES_ULAW):
                session.feed(ulaw[start : start + FRAME_BYTES_ULAW])
                next_at += FRAME_MS / 1000
                if start // FRAME_BYTES_ULAW % FRAMES_PER_WAKE == FRAMES_PER_WAKE - 1:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            partial = bool(session.partial_text)
            committed = time.perf_counter()
            try:
                transcript = await session.commit()
            except ProviderError as exc:
                outcomes.append(Outcome(0.0, partial, False, exc.message))
                continue
            final_ms = (time.perf_counter() - committed) * 1000
            outcomes.append(Outcome(final_ms, partial, transcript.text == text))
    finally:
        await session.aclose()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    return outcomes


def _row(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name}: no samples"
    return (
        f"  {name}: p50 {percentile(values, 50):.1f} ms · p90 {percentile(values, 90):.1f} ms"
        f" · p99 {percentile(values, 99):.1f} ms · max {max(values):.1f} ms  (n={len(values)})"
    )


def _serve_simulator(pipe: Connection, final_delay_ms: float, partial_interval_ms: int) -> None:
    """The simulator's process: send its base URL, serve until told to stop, then send
    its own commit → completed times."""

    async def serve() -> None:
        behaviour = RealtimeBehaviour(
            final_delay_ms=final_delay_ms, partial_interval_ms=partial_interval_ms
        )
        async with ProviderSim(SimConfig(realtime=behaviour, seed=5)) as sim:
            for text in PHRASES:
                sim.register_phrase(text, synthesize_hebrew(text, cache_dir=AUDIO_CACHE), 8000)
            pipe.send(sim.base_url)
            await asyncio.to_thread(pipe.recv)
            pipe.send([c.final_after_commit_ms for c in sim.realtime_commits])

    asyncio.run(serve())


async def main(args: argparse.Namespace) -> None:
    lines = []
    for index, text in enumerate(PHRASES):
        lines.append((text, _line(synthesize_hebrew(text, cache_dir=AUDIO_CACHE), index)))
    pipe, child_pipe = multiprocessing.Pipe()
    simulator = multiprocessing.get_context("spawn").Process(
        target=_serve_simulator,
        args=(child_pipe, args.final_delay_ms, args.partial_interval_ms),
        daemon=True,
    )
    simulator.start()
    try:
        base_url = await asyncio.to_thread(pipe.recv)
        endpoint = ProviderEndpoint(
            stage="stt",
            base_url=base_url,
            api_key=SecretStr("sim-key"),
            model="sim",
            timeout_s=5.0,
            configured=True,
        )
        stt = RealtimeTranscriber(endpoint, final_timeout_s=args.final_timeout_s)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(_call(stt, lines, args.turns, offset) for offset in range(args.calls))
        )
        wall_s = time.perf_counter() - started
        await stt.aclose()
        pipe.send("stop")
        sim_ms: list[float] = await asyncio.to_thread(pipe.recv)
    finally:
        simulator.join(timeout=5)
        if simulator.is_alive():
            simulator.kill()
    outcomes = [o for result in results for o in result]
    finals = [o.final_ms for o in outcomes if o.error is None]
    errors = [o.error for o in outcomes if o.error is not None]
    print(
        f"streaming STT: {args.calls} call(s) × {args.turns} turn(s), simulator final delay "
        f"{args.final_delay_ms:.0f} ms, partial every {args.partial_interval_ms} ms of audio "
        f"({wall_s:.1f} s)"
    )
    print(_row("final after commit (client)", finals))
    print(_row("commit → completed (simulator)", sim_ms))
    with_partial = sum(o.partial_before_commit for o in outcomes)
    print(f"  partial transcript before the commit: {with_partial}/{len(outcomes)}")
    wrong = sum(1 for o in outcomes if o.error is None and not o.correct)
    print(f"  wrong finals: {wrong} · failed utterances: {len(errors)}")
    for error in sorted(set(errors))[:5]:
        print(f"    {error}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--final-delay-ms", type=float, default=150.0)
    parser.add_argument("--partial-interval-ms", type=int, default=300)
    parser.add_argument("--final-timeout-s", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
