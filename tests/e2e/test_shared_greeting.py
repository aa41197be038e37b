"""The greeting one process prepares is played from the shared cache by the process the
stream reaches (two servers, one Redis, no shared TTS directory), issue #10 item 9."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from tests.e2e.conftest import call_server_settings
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.server import free_port, running_server
from voicebot.testing.twilio_caller import open_stream

ACCOUNT_SID = "AC" + "4" * 32
AUTH_TOKEN = "shared-greeting-token"
LOAD_BALANCER_URL = "http://lb.localhost"  # the balancer's name (loopback: no secrets needed)
TTS_FIRST_BYTE_MS = 1500.0
GREETING_BOUND_MS = 500.0


async def test_greeting_prepared_by_one_process_is_played_at_once_by_the_other(
    tmp_path: Path, redis_url: str
) -> None:
    """With TTS taking 1.5 s to its first byte, the stream's process plays the greeting the
    webhook's process made within 0.5 s of `start`: it came from Redis, not from TTS."""
    async with ProviderSim(SimConfig(seed=3)) as sim:
        ports = free_port(), free_port()
        # One database, as behind a load balancer; a TTS directory each, as on two hosts.
        settings = [
            call_server_settings(
                tmp_path,
                port=port,
                sim=sim,
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                redis_url=redis_url,
                public_base_url=LOAD_BALANCER_URL,
                tts_base_url=sim.base_url,
                tts_api_key="sim-key",
                tts_cache_dir=str(tmp_path / name / "tts"),
            )
            for name, port in zip(("p1", "p2"), ports, strict=True)
        ]
        async with (
            running_server(settings[0], port=ports[0]) as first_base,
            running_server(settings[1], port=ports[1]) as second_base,
        ):
            # Slow TTS from now on (start-up warms the fixed phrases through it).
            sim.config.tts = StageBehaviour(delay_ms=TTS_FIRST_BYTE_MS)
            form = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "7" * 32, "To": "+972501112233",
                    "From": "+97233720000", "Direction": "outbound-api"}  # fmt: skip
            signature = RequestValidator(AUTH_TOKEN).compute_signature(
                LOAD_BALANCER_URL + "/twilio/voice", form
            )
            async with httpx.AsyncClient(timeout=10.0) as http:
                answer = await http.post(
                    first_base + "/twilio/voice",
                    data=form,
                    headers={"X-Twilio-Signature": signature},
                )
            stream = ET.fromstring(answer.text).find("./Connect/Stream")  # noqa: S314 - ours
            assert stream is not None, answer.text
            async with open_stream(
                second_base,
                stream_url=stream.get("url", ""),
                parameters={p.get("name", ""): p.get("value", "") for p in stream},
                call_sid=form["CallSid"],
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                public_base_url=LOAD_BALANCER_URL,
            ) as call:
                await call.wait_until(lambda: call.metrics.first_agent_media_ms is not None, 10)
                first_frame_ms = call.metrics.first_agent_media_ms
    assert first_frame_ms is not None and first_frame_ms < GREETING_BOUND_MS, first_frame_ms
