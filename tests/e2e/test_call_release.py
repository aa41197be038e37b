"""An ended call lets go of its audio at once: what is left of it in reference cycles
(for the garbage collector's rare full collections) holds no utterance or speculation."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import call_server, hebrew_speech, local_call_services, recognising_sim
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.call.session import CallSession, UtteranceIn
from voicebot.call.speculation import Speculation
from voicebot.config import Settings
from voicebot.testing.provider_sim import ProviderSim
from voicebot.testing.twilio_caller import place_call

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "release-auth-token"
ANSWER = "כן, אפשר לדבר עכשיו"


@pytest.fixture
async def sim() -> AsyncIterator[ProviderSim]:
    async with recognising_sim(seed=5, phrases=[ANSWER]) as running:
        yield running


@pytest.fixture
async def server(tmp_path: Path, sim: ProviderSim) -> AsyncIterator[tuple[str, Settings]]:
    async with call_server(tmp_path, sim, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as served:
        yield served


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """Unreachable objects found by the next collection, kept for inspection."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


async def test_an_ended_call_keeps_no_audio_in_its_cycles(
    server: tuple[str, Settings], saved_garbage: list[object]
) -> None:
    base, _ = server
    async with place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call:
        await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
        speech = call.say(pcm16_to_ulaw(hebrew_speech(ANSWER)))
        await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
    await asyncio.sleep(1.0)  # the session's bookkeeping ends
    gc.collect()
    kinds = {type(o) for o in saved_garbage}
    assert CallSession in kinds  # the session itself is still in a cycle: this test sees it
    assert UtteranceIn not in kinds
    assert Speculation not in kinds


async def test_an_ended_call_drops_frame_actions_that_never_ran(tmp_path: Path) -> None:
    """A barge-in's action still queued when the call ends (its runner was busy) is dropped
    with the call, not kept with the reply it would have interrupted."""
    from tests.e2e.test_end_reason import Peer, _session

    async with local_call_services(tmp_path, inbound_media_timeout_s=60.0) as services:
        session = await _session(services, Peer(echo_marks=True), "CAreleased")
        never = asyncio.Event()
        async with asyncio.timeout(20), asyncio.TaskGroup() as tg:
            runner = tg.create_task(session.run())
            session._actions.put_nowait(never.wait)  # the runner is busy with this one
            session._actions.put_nowait(lambda: asyncio.sleep(0))  # …so this one never runs
            await asyncio.sleep(0.2)
            session.on_stop()
            await runner
    assert session._actions.empty()
