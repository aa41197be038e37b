"""Redis dies mid-call: the call goes on with in-process turn state."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.e2e.conftest import AUDIO_CACHE, call_server_settings
from tests.e2e.test_call import ACCOUNT_SID, ANSWER, AUTH_TOKEN
from voicebot.audio.codec import pcm16_to_ulaw
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import place_call


async def test_call_survives_redis_death(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """After Redis is killed, the caller's next utterance still gets an answer."""
    redis_url, proc = own_redis
    port = free_port()
    async with ProviderSim(SimConfig(seed=5)) as sim:
        sim.register_phrase(ANSWER, synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE), 8000)
        settings = call_server_settings(
            tmp_path,
            port=port,
            sim=sim,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            redis_url=redis_url,
        )
        async with (
            running_server(settings, port=port) as base,
            place_call(base, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as call,
        ):
            await call.wait_until(lambda: len(call.metrics.marks) >= 1, 20)
            proc.kill()
            proc.wait()
            await asyncio.sleep(0.1)
            speech = call.say(pcm16_to_ulaw(synthesize_hebrew(ANSWER, cache_dir=AUDIO_CACHE)))
            await call.wait_until(lambda: speech.response_latency_ms is not None, 20)
            marks = len(call.metrics.marks)
            await call.wait_until(lambda: len(call.metrics.marks) > marks, 20)
            assert not call.ended
