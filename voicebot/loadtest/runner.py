"""Runs N simulated Twilio calls against a server and collects what they measure.

Every call is a faithful Twilio Media Streams client (:mod:`voicebot.testing.twilio_caller`):
signed webhook, TwiML ``<Stream>`` and ``<Parameter>``s, signed handshake,
``connected``/``start``, 20 ms ``media`` frames (silence included), real-time
playback with ``mark`` echoes and ``clear``, ``stop``. One :class:`FrameTicker`
clocks the frames of all calls; a monitor samples the server once a second.

A call: wait for the greeting and let it finish, then ``turns`` times say a
phrase and wait for the first agent audio (turn latency); with probability
``barge_in_prob`` speak again over the reply and time the ``clear``; then stay
on the line (silent) until ``duration_s`` after connecting, if given, and hang up.
The agent may end the call first (a booking, a goodbye): a normal close after a
reply counts as a good call (``ended_by_agent``), also when it comes while the caller is
already saying its next line (it speaks ``AGENT_QUIET_S`` after the goodbye) and the
close reason is ``brain_end`` or ``transfer``: that line is not counted as a turn. A
close after a caller's line ended without a reply, or with an error code, is a failure
and a dropped call. A caller turn with no agent audio within ``REPLY_TIMEOUT_S`` is an
unanswered turn (the call goes on, and counts as failed).
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import httpx
from websockets.exceptions import InvalidHandshake, WebSocketException

from voicebot.loadtest.report import (
    ConfiguredDelays,
    LoadReport,
    Samples,
    ServerUsage,
    build_report,
)
from voicebot.loadtest.server_stats import ServerReading, ServerStats
from voicebot.loadtest.speech import DEFAULT_PHRASES, CallerPhrase, prepare_phrases
from voicebot.testing.twilio_caller import (
    CallNotConnectedError,
    FrameTicker,
    SimulatedCall,
    place_call,
)

GREETING_TIMEOUT_S = 20.0
REPLY_TIMEOUT_S = 20.0
CLEAR_TIMEOUT_S = 3.0
AGENT_QUIET_S = 0.8
"""The agent has finished speaking once nothing played or arrived for this long."""
AGENT_QUIET_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.1
"""How often a waiting call re-checks; timings come from message timestamps, not from this."""
BARGE_IN_DELAY_RANGE_S = (0.3, 0.7)
"""Barge-in starts this long after the reply's first audio (uniformly drawn)."""
MONITOR_INTERVAL_S = 1.0
PROGRESS_INTERVAL_S = 1.0
HTTP_POOL_CONNECTIONS = 100
HTTP_TIMEOUT_S = 15.0
NORMAL_CLOSURE = 1000
AGENT_END_REASONS = frozenset({"brain_end", "transfer"})
"""Close reasons (the server's end reason) of a call the agent ended on purpose."""
SETTLE_S = 0.5
"""Pause after the last call before the final server reading (lets the server finish up)."""


@dataclass(frozen=True, slots=True)
class LoadTestConfig:
    """What to run; ``url`` is where requests go, ``public_url`` what the server signs."""

    url: str
    account_sid: str
    auth_token: str
    calls: int = 10
    ramp_s: float = 5.0
    duration_s: float | None = None
    turns: int = 3
    barge_in_prob: float = 0.0
    noise_snr_db: float | None = None
    phrases: tuple[str, ...] = DEFAULT_PHRASES
    public_url: str | None = None
    server_pid: int | None = None
    delays: ConfiguredDelays = field(default_factory=ConfiguredDelays)
    seed: int | None = None
    progress: bool = False


class CallFailedError(Exception):
    """One simulated call did not go as a healthy call goes; ``reason`` is the report key;
    ``dropped`` when the server cut the call (rather than, say, leaving a turn unanswered)."""

    def __init__(self, reason: str, *, dropped: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.dropped = dropped


@dataclass(slots=True)
class _Timeline:
    """Per-second server readings, for the memory figure and the plot."""

    points: list[tuple[float, int, ServerReading]] = field(default_factory=list)


class LoadTest:
    """One run: prepares audio, starts the ticker and monitor, runs the calls, reports."""

    def __init__(self, config: LoadTestConfig, *, out: TextIO = sys.stderr) -> None:
        self.config = config
        self.samples = Samples()
        self.ticker = FrameTicker()
        self.timeline = _Timeline()
        self._out = out
        self._connected = 0
        self._finished = 0
        self._rng = random.Random(config.seed)  # noqa: S311 - timing jitter, not cryptography
        self._started_s = 0.0

    async def run(self) -> LoadReport:
        config = self.config
        phrases = await prepare_phrases(config.phrases, noise_snr_db=config.noise_snr_db)
        limits = httpx.Limits(max_connections=HTTP_POOL_CONNECTIONS)
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, limits=limits) as http:
            stats = ServerStats(http, config.url, pid=config.server_pid)
            before = await stats.read()
            cpu_before_s = time.process_time()
            self._started_s = time.monotonic()
            async with asyncio.TaskGroup() as group:
                ticker = group.create_task(self.ticker.run())
                monitor = group.create_task(self._monitor(stats))
                async with asyncio.TaskGroup() as calls:
                    for index in range(config.calls):
                        calls.create_task(self._one_call(index, phrases, http))
                await asyncio.sleep(SETTLE_S)
                ticker.cancel()
                monitor.cancel()
            wall_s = time.monotonic() - self._started_s
            loadgen_cpu_s = time.process_time() - cpu_before_s
            after = await stats.read()
        if config.progress:
            self._out.write("\n")
        peak_calls, peak_rss = self._peak_memory()
        server = ServerUsage(
            cpu_s=after.cpu_s - before.cpu_s,
            rss_before_bytes=before.rss_bytes,
            rss_with_calls_bytes=peak_rss,
            inbound_frame_gaps=after.inbound_frame_gaps - before.inbound_frame_gaps,
            loop_lag_worst_ms=after.loop_lag_worst_ms,
        )
        return build_report(
            calls=config.calls,
            samples=self.samples,
            wall_s=wall_s,
            frame_delays_ms=list(self.ticker.lags_ms),
            server=server,
            loadgen_cpu_s=loadgen_cpu_s,
            delays=config.delays,
            memory_calls=peak_calls,
        )

    def _peak_memory(self) -> tuple[int, float]:
        """(calls connected, RSS) at the reading with the most calls (the highest RSS of those)."""
        best: tuple[int, float] = (0, math.nan)
        for _, connected, reading in self.timeline.points:
            if math.isnan(reading.rss_bytes):
                continue
            if connected > best[0] or (connected == best[0] and reading.rss_bytes > best[1]):
                best = (connected, reading.rss_bytes)
        return best

    # One call.

    async def _one_call(
        self, index: int, phrases: Sequence[CallerPhrase], http: httpx.AsyncClient
    ) -> None:
        config = self.config
        rng = random.Random(self._rng.random())  # noqa: S311 - same
        if config.calls > 1:
            await asyncio.sleep(index * config.ramp_s / (config.calls - 1))
        connected_s: float | None = None
        call: SimulatedCall | None = None
        try:
            async with place_call(
                config.url,
                account_sid=config.account_sid,
                auth_token=config.auth_token,
                public_base_url=config.public_url,
                http=http,
                ticker=self.ticker,
                record_agent_audio=False,
            ) as call:
                connected_s = time.monotonic()
                self._connected += 1
                self.samples.peak_concurrency = max(self.samples.peak_concurrency, self._connected)
                try:
                    await self._converse(call, index, phrases, rng, connected_s)
                finally:
                    self._connected -= 1
                    self.samples.call_seconds += time.monotonic() - connected_s
                    self.samples.underruns += call.metrics.underruns
            if call.metrics.protocol_errors:
                raise CallFailedError("protocol error: " + call.metrics.protocol_errors[0][:60])
            self.samples.calls_ok += 1
        except CallFailedError as exc:
            self.samples.failures[exc.reason] += 1
            self.samples.calls_dropped += exc.dropped
            self._note_failed(call, exc.reason, connected_s)
        except CallNotConnectedError as exc:
            self.samples.failures[f"webhook answered {exc.status_code} without a stream"] += 1
        except InvalidHandshake as exc:
            self.samples.failures[f"websocket handshake: {type(exc).__name__}"] += 1
        except (OSError, httpx.HTTPError, WebSocketException, TimeoutError) as exc:
            stage = "connect" if connected_s is None else "mid-call"
            self.samples.failures[f"{stage}: {type(exc).__name__}"] += 1
            self.samples.calls_dropped += connected_s is not None
            self._note_failed(call, f"{stage}: {type(exc).__name__}", connected_s)
        finally:
            self._finished += 1

    def _note_failed(
        self, call: SimulatedCall | None, reason: str, connected_s: float | None
    ) -> None:
        if call is None or connected_s is None:
            return
        self.samples.failed_calls.append(
            {
                "call_sid": call.call_sid,
                "reason": reason,
                "close_code": call.close_code,
                "connected_s": round(time.monotonic() - connected_s, 1),
            }
        )

    async def _converse(
        self,
        call: SimulatedCall,
        index: int,
        phrases: Sequence[CallerPhrase],
        rng: random.Random,
        connected_s: float,
    ) -> None:
        config = self.config
        if not await _poll(
            lambda: call.metrics.first_agent_media_ms is not None or call.ended,
            GREETING_TIMEOUT_S,
        ):
            raise CallFailedError("no greeting")
        if call.metrics.first_agent_media_ms is None:
            raise CallFailedError("ended by the server before the greeting", dropped=True)
        self.samples.greeting_ms.append(call.metrics.first_agent_media_ms)
        await _agent_quiet(call)
        unanswered = 0
        for turn in range(config.turns):
            if call.ended:
                break
            phrase = phrases[(index + turn) % len(phrases)]
            unanswered += not await self._turn(call, phrase)
            if rng.random() < config.barge_in_prob:
                await asyncio.sleep(rng.uniform(*BARGE_IN_DELAY_RANGE_S))
                await self._barge_in(call, phrases[(index + turn + 1) % len(phrases)])
            await _agent_quiet(call)
        if config.duration_s is not None and not call.ended:
            remaining_s = connected_s + config.duration_s - time.monotonic()
            if remaining_s > 0:
                await _poll(lambda: call.ended, remaining_s)
        if call.ended and call.close_code != NORMAL_CLOSURE:
            raise CallFailedError(
                f"server closed the stream with code {call.close_code}", dropped=True
            )
        # An unanswered turn fails the call even when the agent hung up later on.
        if unanswered:
            raise CallFailedError("a caller turn got no reply")
        if call.ended:
            self.samples.ended_by_agent += 1  # a normal close after a reply

    async def _turn(self, call: SimulatedCall, phrase: CallerPhrase) -> bool:
        """Say ``phrase``; True when agent audio answered it. A call the server ends
        without answering is dropped; a turn left unanswered on a live call is counted."""
        self.samples.turns_asked += 1
        speech = call.say(phrase.speech)
        await _poll(lambda: speech.response_latency_ms is not None or call.ended, REPLY_TIMEOUT_S)
        latency_ms = speech.response_latency_ms
        if latency_ms is None:
            if (
                call.ended
                and call.close_code == NORMAL_CLOSURE
                and call.close_reason in AGENT_END_REASONS
                and speech.end_s is None
            ):
                # The agent hung up after its last reply (a goodbye, then the close) while
                # this line was still being said: not a turn; the caller ends with it.
                self.samples.turns_asked -= 1
                return True
            if call.ended:
                raise CallFailedError("ended by the server without a reply", dropped=True)
            return False
        self.samples.turn_ms.append(latency_ms)
        elapsed_s = time.monotonic() - self._started_s
        self.samples.turn_timeline.append((elapsed_s, self._connected, latency_ms))
        return True

    async def _barge_in(self, call: SimulatedCall, phrase: CallerPhrase) -> None:
        """Speak over the reply; a `clear` must come unless the reply ended on its own."""
        if not call.playback.busy:
            return  # The reply was over before the barge-in moment: nothing to interrupt.
        audio_before_ms = call.metrics.agent_audio_ms
        speech = call.say(phrase.speech)
        await _poll(lambda: speech.clear_latency_ms is not None or call.ended, CLEAR_TIMEOUT_S)
        if speech.clear_latency_ms is None:
            if call.metrics.agent_audio_ms - audio_before_ms > CLEAR_TIMEOUT_S * 1000 / 3:
                raise CallFailedError("no clear on barge-in")
            return  # The agent stopped by itself before the server could call it a barge-in.
        self.samples.barge_in_clear_ms.append(speech.clear_latency_ms)
        await _poll(lambda: speech.end_s is not None or call.ended, REPLY_TIMEOUT_S)
        self.samples.audio_after_clear_ms.append(speech.audio_after_clear_ms)

    # Monitoring.

    async def _monitor(self, stats: ServerStats) -> None:
        last_progress_s = 0.0
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_S)
            reading = await stats.read()
            now = time.monotonic() - self._started_s
            self.timeline.points.append((now, self._connected, reading))
            if self.config.progress and now - last_progress_s >= PROGRESS_INTERVAL_S:
                last_progress_s = now
                self._out.write("\r" + self._progress_line(now))
                self._out.flush()

    def _progress_line(self, elapsed_s: float) -> str:
        s = self.samples
        turns = sorted(s.turn_ms[-200:])
        p50 = f"{turns[len(turns) // 2]:.0f}" if turns else "-"
        return (
            f"{elapsed_s:6.1f} s  live {self._connected:4d}  done {self._finished:4d}/"
            f"{self.config.calls}  ok {s.calls_ok}  failed {sum(s.failures.values())}  "
            f"turns {len(s.turn_ms)} (p50 {p50} ms)  underruns {s.underruns}  "
            f"tick lag max {self.ticker.max_lag_ms:.0f} ms   "
        )


async def _poll(predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Re-check ``predicate`` every :data:`POLL_INTERVAL_S` until true (True) or timeout (False)."""
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline_s:
            return False
        await asyncio.sleep(POLL_INTERVAL_S)
    return True


async def _agent_quiet(call: SimulatedCall) -> None:
    """Wait until the agent played everything and sent nothing for :data:`AGENT_QUIET_S`."""
    last_ms = call.metrics.agent_audio_ms
    quiet_since_s = time.monotonic()
    deadline_s = quiet_since_s + AGENT_QUIET_TIMEOUT_S
    while time.monotonic() - quiet_since_s < AGENT_QUIET_S and not call.ended:
        if time.monotonic() > deadline_s:
            raise CallFailedError("agent never went quiet")
        await asyncio.sleep(POLL_INTERVAL_S)
        if call.playback.busy or call.metrics.agent_audio_ms != last_ms:
            last_ms = call.metrics.agent_audio_ms
            quiet_since_s = time.monotonic()


async def run_load_test(config: LoadTestConfig, *, out: TextIO = sys.stderr) -> LoadReport:
    """Run the load test described by ``config`` and return its report."""
    return await LoadTest(config, out=out).run()
