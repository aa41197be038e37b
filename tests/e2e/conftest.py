"""What every end-to-end call test shares: espeak-ng present, and one server configuration
(SQLite, Twilio signatures on, the provider simulator as STT)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVICES, make_settings
from voicebot.cli import migrate
from voicebot.config import Settings
from voicebot.testing.provider_sim import ProviderSim


@pytest.fixture(autouse=True)
def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        message = "espeak-ng is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


def call_server_settings(
    tmp_path: Path,
    *,
    port: int,
    sim: ProviderSim,
    account_sid: str,
    auth_token: str,
    **overrides: Any,
) -> Settings:
    """Settings of a migrated SQLite server on ``port`` that transcribes through ``sim``."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
    migrate(make_settings(database_url=url))
    values: dict[str, Any] = {
        "database_url": url,
        "public_base_url": f"http://127.0.0.1:{port}",
        "twilio_account_sid": account_sid,
        "twilio_auth_token": auth_token,
        "stt_base_url": sim.base_url,
        "stt_api_key": "sim-key",
        "tts_cache_dir": str(tmp_path / "tts"),
    }
    values.update(overrides)
    return make_settings(**values)
