"""The load generator against a real server on loopback: signed calls, turns, barge-in, report."""

from __future__ import annotations

import math
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, make_settings
from voicebot.cli import migrate
from voicebot.loadtest.report import ConfiguredDelays
from voicebot.loadtest.runner import LoadTest, LoadTestConfig
from voicebot.loadtest.speech import AUDIO_CACHE_DIR
from voicebot.testing.hebrew_audio import synthesize_hebrew
from voicebot.testing.provider_sim import ProviderSim, SimConfig, StageBehaviour
from voicebot.testing.server import free_port, running_server

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "loadtest-token"
PHRASES = ("כן, אפשר לדבר עכשיו", "כן מעניין אותי")
STT_DELAY_MS = 50.0


@pytest.fixture(autouse=True)
def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    async with ProviderSim(SimConfig(stt=StageBehaviour(delay_ms=STT_DELAY_MS), seed=5)) as sim:
        for phrase in PHRASES:
            sim.register_phrase(phrase, synthesize_hebrew(phrase, cache_dir=AUDIO_CACHE_DIR), 8000)
        port = free_port()
        url = f"sqlite+aiosqlite:///{tmp_path / 'load.db'}"
        migrate(make_settings(database_url=url))
        settings = make_settings(
            database_url=url,
            public_base_url=f"http://127.0.0.1:{port}",
            twilio_account_sid=ACCOUNT_SID,
            twilio_auth_token=AUTH_TOKEN,
            stt_base_url=sim.base_url,
            stt_api_key="sim-key",
            tts_cache_dir=str(tmp_path / "tts"),
            rate_limit_per_minute=100_000,
        )
        async with running_server(settings, port=port) as base:
            yield base


async def test_two_calls_complete_and_the_report_adds_up(server: str) -> None:
    """Two calls greet, answer a turn each, are barged in on, and the report counts it all."""
    test = LoadTest(
        LoadTestConfig(
            url=server,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            calls=2,
            ramp_s=0.5,
            turns=1,
            barge_in_prob=1.0,
            phrases=PHRASES,
            delays=ConfiguredDelays(endpoint_silence_ms=700, stt_ms=STT_DELAY_MS),
            seed=1,
        )
    )
    report = await test.run()
    assert report.calls_ok == 2, report.failure_reasons
    assert report.calls_failed == 0 and report.failure_reasons == {}
    assert report.greeting.n == 2 and report.greeting.p50_ms > 0
    assert report.turn.n >= 2
    assert report.overhead.p50_ms == pytest.approx(report.turn.p50_ms - 750)
    assert report.barge_in_clear.n >= 1
    assert report.audio_after_clear_ms_max == 0
    assert report.peak_concurrency == 2
    assert report.frame_delay.n > 50
    assert report.server_cpu_s > 0  # read from the server's own /metrics
    assert report.call_minutes > 0
    assert not math.isnan(report.server_cpu_s_per_call_minute)
    assert report.loadgen_cpu_s > 0
    assert report.to_json()["clean"] is report.clean
    assert len(test.samples.turn_timeline) == report.turn.n


async def test_refused_signature_is_reported_as_a_failed_call(server: str) -> None:
    """Calls signed with the wrong auth token fail with the webhook's status as the reason."""
    report = await LoadTest(
        LoadTestConfig(
            url=server, account_sid=ACCOUNT_SID, auth_token="wrong", calls=2, ramp_s=0, turns=0
        )
    ).run()
    assert report.calls_ok == 0 and report.calls_failed == 2
    assert report.failure_reasons == {"webhook answered 403 without a stream": 2}
    assert not report.clean
