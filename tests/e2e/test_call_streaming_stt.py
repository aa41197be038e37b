"""A live call with streaming recognition (STT_MODE=streaming): the caller's μ-law goes to
the simulator's Realtime transcription websocket as it arrives, the end of the turn commits
it, and the final transcript is answered; when streaming fails the turn is still answered
through batch STT — real loopback websockets and HTTP, the real `openai` client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import call_server, hebrew_speech, recognising_sim
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.config import Settings
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.realtime_sim import RealtimeBehaviour
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "streaming-stt-auth-token"
ANSWER = "כן, אפשר לדבר עכשיו"


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=11, phrases=[ANSWER]) as running:
        yield running


@pytest.fixture
async def server(tmp_path: Path, sim: ProviderSim) -> AsyncIterator[tuple[str, Settings]]:
    async with call_server(
        tmp_path,
        sim,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        stt_mode="streaming",
        # Generous for a loaded test machine: a final this late would go to batch STT.
        stt_streaming_final_timeout_s=5.0,
    ) as served:
        yield served


async def _answer_once(base: str, *, played: bool = False) -> list[dict[str, object]]:
    """Greeting, one caller answer, the agent's reply heard (``played``: heard to its end);
    returns the stored turns."""
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_for_greeting(20)
        speech = call.say(pcm16_to_ulaw(hebrew_speech(ANSWER)))
        marks_before = len(call.metrics.marks)
        await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
        assert speech.response_latency_ms is not None, "the caller heard nothing back"
        if played:  # a reply cut before it played stores no agent turn
            await call.wait_until(
                lambda: len(call.metrics.marks) > marks_before and not call.playback.busy, 30
            )
    async with httpx.AsyncClient(base_url=base) as http:
        calls = (await http.get("/api/v1/calls")).json()["items"]
        detail = (await http.get(f"/api/v1/calls/{calls[0]['id']}")).json()
    turns: list[dict[str, object]] = detail["turns"]
    return turns


def _batch_requests(sim: ProviderSim) -> int:
    """Batch uploads of the caller's answer (the start-up warm-up's silence, whenever it
    lands, is not one)."""
    return sum(1 for r in sim.log if r.stage == "stt" and r.detail == ANSWER)


async def test_a_turn_is_recognised_over_the_realtime_socket(
    server: tuple[str, Settings], sim: ProviderSim
) -> None:
    """The caller's answer reaches the brain as the streaming final; no batch upload."""
    base, _ = server
    turns = await _answer_once(base)
    user = [t for t in turns if t["role"] == "user"]
    assert [t["text"] for t in user] == [ANSWER]
    # The answer's comma is a pause: the audio so far was committed there (a speculative
    # reply's words); the turn's final is the last commit, of the whole answer.
    commits = list(sim.realtime_commits)
    assert [(c.outcome, c.transcript) for c in commits[-1:]] == [("completed", ANSWER)], commits
    assert _batch_requests(sim) == 0, "the turn went to batch STT"
    # The start-up probe's session, then one session for the call, opened at its start.
    assert sim.requests["realtime"] == 2, sim.requests


async def test_a_streaming_failure_falls_back_to_batch_stt(
    server: tuple[str, Settings], sim: ProviderSim
) -> None:
    """The Realtime socket dropped mid-utterance: the same turn is transcribed by batch
    STT and answered."""
    base, _ = server
    sim.config.realtime = RealtimeBehaviour(close_after_appends=2)
    turns = await _answer_once(base)
    user = [t for t in turns if t["role"] == "user"]
    assert [t["text"] for t in user] == [ANSWER]
    # The socket dropped mid-utterance. When it was back before the caller resumed after
    # the comma's pause, the whole utterance went again on the new socket (a resume
    # re-sends it); otherwise batch STT took the turn. Never both, never neither.
    completed = [c for c in sim.realtime_commits if c.outcome == "completed"]
    assert [c.transcript for c in completed] in ([], [ANSWER])
    assert _batch_requests(sim) == (0 if completed else 1)


async def test_a_reply_started_on_the_partial_answers_the_turn_once(
    server: tuple[str, Settings], sim: ProviderSim
) -> None:
    """At the pause the reply starts on the partial transcript, before the commit's final:
    the final keeps it (same words) or it is redone on the final's words; either way one
    speculation answers the turn and the stored caller turn is the final's words."""
    base, _ = server
    turns = await _answer_once(base, played=True)
    async with httpx.AsyncClient(base_url=base) as http:
        metrics = (await http.get("/metrics")).text
    assert [t["text"] for t in turns if t["role"] == "user"] == [ANSWER]
    started = sum(
        _counter(metrics, f'voicebot_speculative_partial_replies_total{{outcome="{outcome}"}}')
        for outcome in ("kept", "redone")
    )
    assert started >= 1, "no reply was started on a partial transcript"
    assert _counter(metrics, 'voicebot_speculative_turns_total{outcome="used"}') == 1


def _counter(metrics: str, name: str) -> float:
    """A sample's value in Prometheus text (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
