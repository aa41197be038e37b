"""Provider warm-up at start-up: a wrong API key is logged with its error and keeps
/health/ready at 503 naming the stage; a right key boots ready with every stage ok."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings
from voicebot.app import create_app
from voicebot.cli import migrate
from voicebot.testing.provider_sim import ProviderSim, SimConfig
from voicebot.testing.realtime_sim import RealtimeBehaviour

SIM_KEY = "sk-right-key"


async def _ready(
    tmp_path: Path, sim: ProviderSim, api_key: str, **overrides: Any
) -> httpx.Response:
    url = f"sqlite+aiosqlite:///{tmp_path / 'health.db'}"
    migrate(make_settings(database_url=url))
    settings = make_settings(
        database_url=url,
        openai_base_url=sim.base_url,
        openai_api_key=api_key,
        tts_cache_dir=str(tmp_path / "tts"),
        log_level="INFO",
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.get("/health/ready")


async def test_wrong_api_key_is_not_ready_and_names_each_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every stage answers 401 at warm-up: each failure is logged with its error, and
    /health/ready is 503 with the providers check naming stt, llm and tts."""
    async with ProviderSim(SimConfig(api_key=SIM_KEY)) as sim:
        response = await _ready(tmp_path, sim, "sk-wrong-key")
    assert response.status_code == 503
    body = response.json()
    assert "providers" in body["failing"]
    for stage in ("stt", "llm", "tts"):
        assert body["providers"][stage].startswith("fatal: ")
        assert "HTTP 401" in body["providers"][stage]
        assert f"{stage}: " in body["checks"]["providers"]
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert text.count("provider.warm_up_failed") == 3
    assert "Incorrect API key" in text
    assert "sk-wrong-key" not in text


async def test_right_api_key_boots_ready_with_every_provider_ok(tmp_path: Path) -> None:
    """With the key the simulator expects, every stage's warm-up succeeds."""
    async with ProviderSim(SimConfig(api_key=SIM_KEY)) as sim:
        response = await _ready(tmp_path, sim, SIM_KEY)
        assert sim.requests["stt"] == 1 and sim.requests["llm"] == 1
    assert response.status_code == 200, response.json()
    assert response.json()["providers"] == {"stt": "ok", "llm": "ok", "tts": "ok"}
    assert response.json()["checks"]["providers"] == "ok"
    assert response.json()["mode"]["brain"] == "llm"


async def test_streaming_stt_is_probed_at_start_up(tmp_path: Path) -> None:
    """With STT_MODE=streaming a Realtime transcription session is opened and configured
    at warm-up: ok when it answers, fatal (not ready) when its handshake is refused 403."""
    async with ProviderSim(SimConfig(api_key=SIM_KEY)) as sim:
        response = await _ready(tmp_path, sim, SIM_KEY, stt_mode="streaming")
        assert sim.requests["realtime"] == 1
    assert response.status_code == 200, response.json()
    assert response.json()["providers"]["stt_streaming"] == "ok"
    refused = SimConfig(api_key=SIM_KEY, realtime=RealtimeBehaviour(refuse_status=403))
    async with ProviderSim(refused) as sim:
        response = await _ready(tmp_path, sim, SIM_KEY, stt_mode="streaming")
    assert response.status_code == 503
    assert response.json()["providers"]["stt"] == "ok"
    assert response.json()["providers"]["stt_streaming"].startswith("fatal: ")
    assert "HTTP 403" in response.json()["providers"]["stt_streaming"]


async def test_embedded_defaults_are_ready_and_say_no_provider_is_configured(
    tmp_path: Path,
) -> None:
    """No OpenAI settings (the documented defaults: rule brain, espeak-ng): ready, but the
    providers check says what is not configured and what serves instead, never "ok"."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'health.db'}"
    migrate(make_settings(database_url=url))
    app = create_app(make_settings(database_url=url, tts_cache_dir=str(tmp_path / "tts")))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["providers"]["stt"] == "off" and body["providers"]["llm"] == "off"
    line = body["checks"]["providers"]
    assert line != "ok"
    assert "stt not configured" in line and "llm not configured" in line
    assert "rule-based brain" in line
    assert body["mode"]["brain"] == "rules"
    assert body["mode"]["stt"] == "off"


async def test_a_transient_provider_error_is_reported_but_ready(tmp_path: Path) -> None:
    """A 500 at warm-up is reported as the stage's last error without failing readiness."""
    async with ProviderSim(SimConfig(api_key=SIM_KEY)) as sim:
        sim.config.llm.error_rate = 1.0
        response = await _ready(tmp_path, sim, SIM_KEY)
    assert response.status_code == 200
    assert response.json()["providers"]["llm"].startswith("error: ")
    assert "HTTP 500" in response.json()["providers"]["llm"]
