"""Settings: defaults, derived URLs, provider resolution and errors naming the variable."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from voicebot.config import load_settings, mask_url
from voicebot.errors import ConfigError


def test_defaults_run_on_sqlite_in_jerusalem() -> None:
    """With nothing set, the database is a SQLite file and the zone Asia/Jerusalem."""
    settings = make_settings()
    assert settings.database_url.startswith("sqlite+aiosqlite://")
    assert settings.timezone == "Asia/Jerusalem"
    assert settings.redis_url is None


def test_media_stream_url_derives_from_public_url() -> None:
    """https://host becomes wss://host/twilio/media."""
    settings = make_settings(public_base_url="https://bot.example.co.il/")
    assert settings.media_stream_url == "wss://bot.example.co.il/twilio/media"


def test_postgres_url_gets_the_asyncpg_driver() -> None:
    """postgres:// and postgresql:// URLs are rewritten to the asyncpg dialect."""
    settings = make_settings(database_url="postgres://u:p@db:5432/v")
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/v"
    assert mask_url(settings.database_url) == "postgresql+asyncpg://u:***@db:5432/v"


def test_stage_overrides_shared_openai_defaults() -> None:
    """STT can point at a self-hosted server while the LLM keeps the shared OpenAI key."""
    settings = make_settings(
        openai_api_key="sk-shared",
        stt_base_url="http://whisper.local:9000/v1/",
        stt_model="large-v3",
    )
    stt, llm = settings.provider("stt"), settings.provider("llm")
    assert stt.base_url == "http://whisper.local:9000/v1"
    assert stt.model == "large-v3"
    assert stt.api_key.get_secret_value() == "sk-shared"
    assert llm.base_url == "https://api.openai.com/v1"
    assert "sk-shared" not in repr(stt)


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("timezone", "Mars/Base", "TIMEZONE"),
        ("database_url", "mysql://x", "DATABASE_URL"),
        ("redis_url", "http://x", "REDIS_URL"),
        ("log_format", "xml", "LOG_FORMAT"),
        ("endpoint_silence_ms", 5, "ENDPOINT_SILENCE_MS"),
    ],
)
def test_bad_value_names_the_variable(field: str, value: object, variable: str) -> None:
    """A bad setting fails with a ConfigError that names the environment variable."""
    with pytest.raises(ConfigError, match=variable):
        load_settings(_env_file=None, **{field: value})


def test_bad_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check applies to values read from the environment too."""
    monkeypatch.setenv("BUSINESS_DAYS", "sun,funday")
    with pytest.raises(ConfigError, match="BUSINESS_DAYS"):
        load_settings(_env_file=None)


def test_auto_conversation_mode_follows_the_stt_provider() -> None:
    """`auto` converses over Media Streams with STT configured and in <Gather> turns without;
    an explicit mode wins, and /health/info shows the resolved one."""
    assert make_settings().resolved_conversation_mode == "gather"
    with_stt = make_settings(stt_base_url="http://127.0.0.1:9/v1", stt_api_key="k")
    assert with_stt.resolved_conversation_mode == "stream"
    assert with_stt.summary()["conversation_mode"] == "stream"
    assert make_settings(conversation_mode="stream").resolved_conversation_mode == "stream"
