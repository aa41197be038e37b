"""What each AI provider (STT, LLM, TTS) last answered, for start-up logs and readiness.

At start-up :func:`warm_up` sends every configured stage one tiny real request (0.2 s of
silence to STT, a one-token chat to the LLM, one word to TTS; with ``STT_MODE=streaming``
a Realtime transcription session opened, configured and closed) so a bad key, model or URL
shows at once: the failure is logged with its error, and ``/health/ready`` reports each
stage's last outcome. An error no retry can fix (HTTP 401, 403 or 404: wrong key, no
access, unknown model) makes the process not ready, so a wrong ``OPENAI_API_KEY`` never
boots green and then fails every call. Other errors (timeouts, 5xx) are reported, and
:meth:`ProviderHealth.watch` re-probes the failing stages until they answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from voicebot.errors import ProviderError
from voicebot.providers.base import ChatMessage, Finished, TextDelta, ToolCallsReady
from voicebot.providers.factory import Providers

log = structlog.get_logger(__name__)

# One probe may take this long before it counts as failed.
WARM_UP_TIMEOUT_S = 5.0
# How often watch() re-probes a stage whose last probe failed (but not fatally).
REPROBE_INTERVAL_S = 30.0
# HTTP statuses a retry cannot fix: bad key, no access, unknown model.
FATAL_STATUSES = frozenset({401, 403, 404})
PROBE_SILENCE_PCM16 = b"\x00\x00" * 1600  # 0.2 s at 8 kHz
PROBE_SAMPLE_RATE_HZ = 8000
PROBE_TTS_TEXT = "שלום"
PROBE_CHAT = (ChatMessage(role="user", content="ping"),)


_OFF_MEANS = {
    "stt": " (no speech recognition)",
    "llm": " (the rule-based brain answers)",
    "tts": " (no voice)",
}


@dataclass(slots=True)
class StageHealth:
    """The last outcome of one stage: ``ok``, ``off`` (not configured), ``unchecked``,
    or ``error`` with its message and whether it is fatal."""

    state: str = "unchecked"
    error: str | None = None
    fatal: bool = False
    checked_at: float | None = None

    def describe(self) -> str:
        if self.state == "error":
            return f"{'fatal' if self.fatal else 'error'}: {self.error}"
        return self.state


class ProviderHealth:
    """Per-stage health of one process's providers."""

    def __init__(self, providers: Providers) -> None:
        self._providers = providers
        self.stages: dict[str, StageHealth] = {
            "stt": StageHealth(state="off" if providers.stt is None else "unchecked"),
            "llm": StageHealth(state="off" if providers.llm is None else "unchecked"),
            "tts": StageHealth(state="unchecked" if providers.tts_available else "off"),
        }
        if providers.stt_streaming is not None:
            self.stages["stt_streaming"] = StageHealth()

    def report(self) -> dict[str, str]:
        """``{"stt": "ok", "llm": "fatal: llm provider returned HTTP 401: …", …}``"""
        return {stage: health.describe() for stage, health in self.stages.items()}

    def mode(self) -> dict[str, str]:
        """What will serve calls: ``{"brain": "llm"|"rules", "stt": …, "tts": …}``, each
        backend by class name or ``off`` (``brain: rules`` is the rule-based Hebrew brain)."""
        backends = self._providers.describe()
        return {
            "brain": "rules" if self._providers.llm is None else "llm",
            "stt": backends["stt"],
            "tts": backends["tts"],
        }

    def summary(self) -> str:
        """The readiness line: ``ok`` only when every stage is configured and its last probe
        answered; otherwise what is off (and what serves instead) and what is not ok yet."""
        parts = []
        for stage, health in self.stages.items():
            if health.state == "off":
                parts.append(f"{stage} not configured{_OFF_MEANS[stage]}")
            elif health.state != "ok":
                parts.append(f"{stage} {health.describe()}")
        return "; ".join(parts) or "ok"

    def fatal(self) -> dict[str, str]:
        """The stages whose last error no retry can fix, with that error."""
        return {
            stage: health.error or ""
            for stage, health in self.stages.items()
            if health.state == "error" and health.fatal
        }

    def record_ok(self, stage: str) -> None:
        self.stages[stage] = StageHealth(state="ok", checked_at=time.time())

    def record_error(self, stage: str, exc: ProviderError | TimeoutError) -> None:
        if isinstance(exc, ProviderError):
            status = (exc.details or {}).get("status") if isinstance(exc.details, dict) else None
            message, fatal = exc.message, status in FATAL_STATUSES
        else:
            message, fatal = f"{stage} provider timed out during warm-up", False
        self.stages[stage] = StageHealth(
            state="error", error=message, fatal=fatal, checked_at=time.time()
        )

    async def warm_up(self, *, timeout_s: float = WARM_UP_TIMEOUT_S) -> None:
        """Probe every configured stage at once; log and record each outcome."""
        async with asyncio.TaskGroup() as group:
            for stage in self._probes():
                group.create_task(self._probe(stage, timeout_s))

    async def watch(self, *, interval_s: float = REPROBE_INTERVAL_S) -> None:
        """Run for the process's life: re-probe the stages whose last probe failed
        (not fatally) every ``interval_s``. Cancel it to stop."""
        while True:
            await asyncio.sleep(interval_s)
            for stage, health in list(self.stages.items()):
                if health.state == "error" and not health.fatal:
                    await self._probe(stage, WARM_UP_TIMEOUT_S)

    def _probes(self) -> dict[str, Callable[[], Awaitable[None]]]:
        probes: dict[str, Callable[[], Awaitable[None]]] = {}
        providers = self._providers
        if providers.stt is not None:
            stt = providers.stt

            async def probe_stt() -> None:
                await stt.transcribe(PROBE_SILENCE_PCM16, sample_rate_hz=PROBE_SAMPLE_RATE_HZ)

            probes["stt"] = probe_stt
        if providers.stt_streaming is not None:
            probes["stt_streaming"] = providers.stt_streaming.probe
        if providers.llm is not None:
            llm = providers.llm

            async def probe_llm() -> None:
                events = llm.stream_chat(PROBE_CHAT, max_tokens=1)
                async with contextlib.aclosing(events):  # type: ignore[type-var]
                    async for event in events:
                        if isinstance(event, TextDelta | ToolCallsReady | Finished):
                            return

            probes["llm"] = probe_llm
        if providers.tts_available:
            tts = providers.tts

            async def probe_tts() -> None:
                chunks = tts.synthesize(PROBE_TTS_TEXT)
                async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                    async for _chunk in chunks:
                        return

            probes["tts"] = probe_tts
        return probes

    async def _probe(self, stage: str, timeout_s: float) -> None:
        probe = self._probes()[stage]
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                await probe()
        except (ProviderError, TimeoutError) as exc:
            self.record_error(stage, exc)
            health = self.stages[stage]
            log.error(
                "provider.warm_up_failed",
                stage=stage,
                error=health.error,
                fatal=health.fatal,
                error_type=type(exc).__name__,
            )
            return
        self.record_ok(stage)
        log.info("provider.warm_up_ok", stage=stage, ms=round((time.monotonic() - started) * 1000))
