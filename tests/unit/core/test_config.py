"""Settings: defaults, derived URLs, provider resolution and errors naming the variable."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from voicebot.config import Settings, load_settings, mask_url
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
    assert mask_url(settings.database_url) == "postgresql+asyncpg://***@db:5432/v"


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
        # Each was a traceback at start-up (port past 65535, a parameter pika refuses).
        ("database_url", "postgresql://u:p@127.0.0.1:99999/v", "DATABASE_URL"),
        ("redis_url", "redis://127.0.0.1:99999/1", "REDIS_URL"),
        ("redis_url", "redis://127.0.0.1:6x79/1", "REDIS_URL"),
        ("broker_url", "amqp://g:g@127.0.0.1:5672/%2f?token=x", "BROKER_URL"),
        ("broker_url", "amqp://g:g@127.0.0.1:5672/%2f?heartbeat=abc", "BROKER_URL"),
        ("broker_url", "redis://127.0.0.1:70000", "BROKER_URL"),
        ("public_base_url", "https://voice.example.com:99999", "PUBLIC_BASE_URL"),
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


def test_secrets_read_from_files_lose_their_trailing_newline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`API_KEY` / `TWILIO_AUTH_TOKEN` with a trailing newline (a Kubernetes secret made from
    a file) are the key without it: no client can send a newline in a header, so the API
    answered 401 to every request, and every webhook signature failed."""
    monkeypatch.setenv("API_KEY", "k3y\n")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", " tok\r\n")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://voice.example.com/ \n")
    settings = load_settings(_env_file=None)
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k3y"
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "tok"
    assert settings.public_base_url == "https://voice.example.com"


def test_every_setting_treats_an_empty_value_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`NAME=` (or blanks) in the environment leaves every setting at its default."""
    for name in Settings.model_fields:
        monkeypatch.setenv(name.upper(), "")
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    empty = load_settings(_env_file=None)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper())
    assert empty == load_settings(_env_file=None)
    assert empty.api_key is None
    assert not empty.provider("llm").configured


def test_empty_values_in_a_dotenv_file_and_in_code_are_unset(tmp_path: object) -> None:
    """`API_KEY=` in .env, and api_key="" given in code, both mean no API key."""
    from pathlib import Path

    env_file = Path(str(tmp_path)) / ".env"
    env_file.write_text("API_KEY=\nOPENAI_API_KEY=\nSTT_TIMEOUT_S=\n", encoding="utf-8")
    from_file = load_settings(_env_file=str(env_file))
    assert from_file.api_key is None and from_file.openai_api_key is None
    assert from_file.summary()["api_key_required"] is False
    assert make_settings(api_key="", secret_key=" ").api_key is None


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+asyncpg://u:pw@db:5432/v?password=X", "postgresql+asyncpg://***@db:5432/v?password=***"),
        ("http://whisper:9000/v1?api_key=Y&x=1", "http://whisper:9000/v1?api_key=***&x=***"),
        ("redis://:pw@r:6379/0", "redis://***@r:6379/0"),
        ("https://u@h/p#tok", "https://***@h/p#***"),
        ("sqlite+aiosqlite:///./voicebot.db", "sqlite+aiosqlite:///./voicebot.db"),
    ],
)  # fmt: skip
def test_mask_url_hides_user_info_and_query_values(url: str, masked: str) -> None:
    """User-info, query values and fragments are masked; host, path and names stay."""
    assert mask_url(url) == masked


def test_summary_never_shows_a_credential() -> None:
    """/health/info's config carries no password, key or token from any URL or setting."""
    settings = make_settings(
        database_url="postgresql://u:pw-1@db/v?password=pw-2",
        redis_url="redis://:pw-3@r:6379/0",
        stt_base_url="http://stt.local/v1?api_key=pw-4",
        openai_base_url="http://u:pw-5@oai.local/v1",
        public_base_url="https://bot.example.com/?token=pw-6",
        api_key="pw-7",
        secret_key="pw-8" * 10,
        twilio_auth_token="pw-9",
    )
    text = repr(settings.summary())
    assert "pw-" not in text
    assert settings.summary()["api_key_required"] is True


def test_previous_secret_key_verifies_tokens_for_one_ttl() -> None:
    """After a rotation, tokens signed with SECRET_KEY_PREVIOUS verify until one
    STREAM_TOKEN_TTL_S after start-up; then only the current key does."""
    from voicebot.config import _PROCESS_STARTED_S
    from voicebot.errors import SignatureError
    from voicebot.telephony.audio_token import issue_audio_token, verify_audio_token
    from voicebot.telephony.stream_token import issue_stream_token, verify_stream_token

    old, new = "o" * 40, "n" * 40
    settings = make_settings(secret_key=new, secret_key_previous=old, stream_token_ttl_s=120)
    now = _PROCESS_STARTED_S + 60
    token = issue_stream_token(old.encode(), call_id=1, call_sid="CA1", ttl_s=120, now_s=now)
    claims = verify_stream_token(settings.verifying_secrets(now), token, now_s=now)
    assert claims.call_id == 1
    audio = issue_audio_token(old.encode(), "שלום")
    assert verify_audio_token(settings.verifying_secrets(now), audio) == "שלום"
    later = _PROCESS_STARTED_S + 121
    late_token = issue_stream_token(old.encode(), call_id=1, call_sid="CA1", ttl_s=60, now_s=later)
    with pytest.raises(SignatureError):
        verify_stream_token(settings.verifying_secrets(later), late_token, now_s=later)
    assert verify_audio_token(settings.verifying_secrets(later), audio) is None
    fresh = issue_stream_token(new.encode(), call_id=2, call_sid="CA2", ttl_s=60, now_s=later)
    assert verify_stream_token(settings.verifying_secrets(later), fresh, now_s=later).call_id == 2
    stranger = issue_stream_token(b"x" * 40, call_id=3, call_sid="CA3", ttl_s=60, now_s=now)
    with pytest.raises(SignatureError):
        verify_stream_token(settings.verifying_secrets(now), stranger, now_s=now)
