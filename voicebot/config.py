"""The one Settings object, read from the environment (and ``.env``) at start-up.

Business code never reads ``os.environ``: it receives a :class:`Settings`.
A bad value fails at start-up with a :class:`~voicebot.errors.ConfigError`
naming the environment variable.
"""

from __future__ import annotations

import ipaddress
import secrets
import sys
import time as clock
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voicebot.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./voicebot.db"
DEFAULT_TIMEZONE = "Asia/Jerusalem"
DEFAULT_STT_MODEL = "gpt-4o-mini-transcribe"
DEFAULT_LLM_MODEL = "gpt-4o-mini"
DEFAULT_TTS_MODEL = "gpt-4o-mini-tts"
DEFAULT_TTS_VOICE = "alloy"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"

Stage = Literal["stt", "llm", "tts"]


@dataclass(frozen=True, slots=True)
class ProviderEndpoint:
    """Where one AI stage (STT, LLM or TTS) is served, resolved from the shared defaults."""

    stage: Stage
    base_url: str
    api_key: SecretStr
    model: str
    timeout_s: float
    configured: bool

    def __repr__(self) -> str:
        return (
            f"ProviderEndpoint(stage={self.stage!r}, base_url={self.base_url!r}, "
            f"model={self.model!r}, configured={self.configured})"
        )


class Settings(BaseSettings):
    """Every tunable of the product. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
        # `API_KEY=` in the environment or .env means unset, never "set to empty".
        env_ignore_empty=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        """An empty or blank value means unset for every setting, however it was given;
        text loses surrounding whitespace (a secret mounted from a file ends in a newline,
        which no HTTP header can carry: the API key and Twilio signatures never matched)."""
        if not isinstance(data, Mapping):
            return data
        return {
            k: v.strip() if isinstance(v, str) else v for k, v in data.items() if not _is_blank(v)
        }

    # Storage and infrastructure.
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # Dramatiq broker: amqp:// (RabbitMQ) or redis://; unset = REDIS_URL, else in-process.
    broker_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    # Postgres connections each process opens at start-up (capped at db_pool_size), so the
    # first burst of Twilio callbacks does not wait for connects, each with the status
    # callbacks' statements prepared (api/twilio_status_warm); 0 = connect on demand.
    db_pool_warm: int = Field(default=10, ge=0)

    # Logging.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] | None = None

    # API protection.
    api_key: SecretStr | None = None
    # `none` declares an API that is meant to be open: a public deployment without
    # API_KEY refuses to start unless it says so.
    api_auth: Literal["key", "none"] = "key"
    # Failed authentications per client address per minute before 429 (shared through Redis).
    auth_failures_per_minute: int = Field(default=20, ge=1)
    # Reverse proxies believed about the client (X-Forwarded-For, X-Forwarded-Proto): IPs or
    # networks, comma-separated, or "*" (uvicorn's syntax; with "*" the client is the last
    # hop). Unset: none, and each client is the connecting address (what throttles key on).
    forwarded_allow_ips: str | None = None
    rate_limit_per_minute: int = Field(default=600, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Lead CSV uploads (POST /api/v1/leads/import): a 10,000-row Hebrew CRM export is ~1-2 MB.
    max_import_bytes: int = Field(default=10 * 1_048_576, ge=1024)
    secret_key: SecretStr | None = None
    # The key before the last rotation: still accepted for tokens for one
    # STREAM_TOKEN_TTL_S after start-up, so calls in flight survive a rotation.
    secret_key_previous: SecretStr | None = None

    # Twilio.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_api_base_url: str | None = None
    twilio_validate_signatures: bool = True
    transfer_number: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    stream_token_ttl_s: int = Field(default=120, ge=5)

    # Campaign engine (voicebot.jobs): account-wide pacing and the sweeper's clocks.
    twilio_cps: float = Field(default=1.0, gt=0, le=1000)
    """Calls per second across the whole account (Twilio's default is 1)."""
    twilio_max_concurrent_calls: int = Field(default=50, ge=1)
    twilio_request_timeout_s: float = Field(default=10.0, gt=0)
    """Bound on one Twilio REST request (the dialer retries what is safe to retry)."""
    """Live outbound campaign calls across all campaigns and processes."""
    campaign_sweep_interval_s: float = Field(default=2.0, gt=0, le=5)
    campaign_lease_s: float = Field(default=10.0, ge=1)
    """How long a sweeper owns a campaign without renewing (another takes over after)."""
    campaign_dial_settle_s: float = Field(default=60.0, ge=1)
    """An attempt sent to Twilio with no answer this long is settled by asking Twilio."""
    campaign_reconcile_after_s: float = Field(default=60.0, ge=1)
    """A placed call with no progress this long is checked against Twilio's record."""
    campaign_stream_start_deadline_s: float = Field(default=20.0, ge=1)
    """An answered stream call whose Media Stream has not started by then is failed."""

    # Outbound webhooks (voicebot.webhooks): the default target of campaigns without their
    # own webhook_url, its HMAC key, and the delivery schedule (exponential backoff from
    # the base, capped, until the event is this old).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=30)
    webhook_retry_base_s: float = Field(default=30.0, gt=0)
    webhook_retry_max_s: float = Field(default=3600.0, gt=0)
    webhook_max_age_s: float = Field(default=86_400.0, gt=0)
    webhook_poll_interval_s: float = Field(default=1.0, gt=0, le=60)

    # Text each booked meeting's lead a confirmation (Twilio Messages, from TWILIO_FROM_NUMBER).
    sms_confirmations: bool = True

    # Recordings of campaigns with `record: true`: a local directory, or an S3-compatible
    # bucket when RECORDING_S3_BUCKET is set (the `s3` extra); deleted after the retention.
    recording_dir: str = ".recordings"
    recording_retention_days: int = Field(default=90, ge=1)
    recording_s3_bucket: str | None = None
    recording_s3_endpoint: str | None = None
    recording_s3_access_key: str | None = None
    recording_s3_secret_key: SecretStr | None = None
    recording_s3_region: str | None = None
    recording_s3_prefix: str = ""
    recording_s3_secure: bool = True

    # AI providers: shared defaults, overridden per stage.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    stt_base_url: str | None = None
    stt_api_key: SecretStr | None = None
    stt_model: str = DEFAULT_STT_MODEL
    stt_timeout_s: float = Field(default=6.0, gt=0)
    # batch: upload each utterance when the turn ends; streaming: one OpenAI Realtime
    # transcription websocket per call, fed the caller's μ-law as it arrives (partials
    # while the caller speaks, the final after the commit); batch STT stands behind it.
    stt_mode: Literal["batch", "streaming"] = "batch"
    stt_streaming_model: str | None = None
    """Realtime transcription model; unset = STT_MODEL."""
    stt_streaming_final_timeout_s: float = Field(default=2.0, gt=0, le=30)
    """No final transcript this long after the commit: the turn falls back to batch STT."""
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = DEFAULT_LLM_MODEL
    llm_timeout_s: float = Field(default=8.0, gt=0)
    tts_base_url: str | None = None
    tts_api_key: SecretStr | None = None
    tts_model: str = DEFAULT_TTS_MODEL
    tts_voice: str = DEFAULT_TTS_VOICE
    tts_timeout_s: float = Field(default=6.0, gt=0)
    tts_cache_dir: str = ".cache/tts"
    # Keep every synthesized sentence in the phrase cache (memory, LRU-bounded), so a
    # sentence said again on any call costs no TTS time or money.
    tts_reuse_sentences: bool = True
    espeak_voice: str = "he"

    # Conversation and calls.
    timezone: str = DEFAULT_TIMEZONE
    business_days: str = "sun,mon,tue,wed,thu"
    business_hours_start: time = time(9, 0)
    business_hours_end: time = time(18, 0)
    meeting_duration_min: int = Field(default=30, ge=5, le=480)
    endpoint_silence_ms: int = Field(default=700, ge=100, le=3000)
    # Overlapped turns: at this much silence inside an utterance, recognition and the
    # reply start (held until the turn is confirmed); 0 turns speculation off.
    speculate_silence_ms: int = Field(default=120, ge=0, le=3000)
    # With streaming STT the reply starts at the pause on the partial transcript, without
    # waiting for the commit's final (redone when the final's words differ).
    speculate_on_partial: bool = True
    # Adaptive endpointing from the words so far (voicebot/brain/turn_end.py): a complete
    # short answer, question or time ends the turn after the short silence, a short reply
    # led by an answer word after the answer silence, hesitation after the long one,
    # anything else after endpoint_silence_ms. Off: silence alone. Chosen with
    # scripts/endpoint_eval.py (BENCHMARKS.md, #14).
    adaptive_endpointing: bool = True
    endpoint_short_silence_ms: int = Field(default=300, ge=100, le=3000)
    endpoint_answer_silence_ms: int = Field(default=450, ge=100, le=3000)
    endpoint_long_silence_ms: int = Field(default=1200, ge=100, le=5000)
    barge_in_min_speech_ms: int = Field(default=180, ge=40, le=2000)
    silence_checkin_s: float = Field(default=8.0, gt=0)
    # Prompts (the last reply, then each check-in) the caller may leave unanswered: at this
    # many silences in a row the agent says goodbye and hangs up (end reason "silence").
    silence_max_prompts: int = Field(default=2, ge=1, le=10)
    max_call_duration_s: int = Field(default=900, ge=1)
    ws_send_timeout_s: float = Field(default=2.0, gt=0)
    # No inbound media this long (a partition without a close): the call ends, REST hang-up.
    inbound_media_timeout_s: float = Field(default=3.0, gt=0)
    turn_state_ttl_s: int = Field(default=3600, ge=60)
    # POST /conversation: one conversation's stored JSON (oldest turns dropped past it), and
    # all conversations this process keeps in memory (Redis down or not configured).
    conversation_max_bytes: int = Field(default=65_536, ge=16_384)
    conversation_memory_max_bytes: int = Field(default=67_108_864, ge=1_048_576)
    # stream = Media Streams with our STT; gather = Twilio recognises speech (<Gather>);
    # auto = gather when no STT provider is configured.
    conversation_mode: Literal["auto", "stream", "gather"] = "auto"

    # Dependencies that go quiet, and deploys (issue #10: store/, call/recorder.py,
    # call/registry.py). Redis commands on the call path give up after this long; a
    # failed Redis is skipped and pinged in the background every retry interval.
    redis_call_timeout_ms: int = Field(default=200, ge=10, le=200)
    redis_retry_interval_s: float = Field(default=1.0, gt=0)
    # Postgres statement_timeout and SQLite busy timeout of every connection.
    db_statement_timeout_ms: int = Field(default=5000, ge=100)
    # On SIGTERM: stop admitting calls, let live ones finish up to this long, then end
    # the rest with a spoken goodbye.
    drain_timeout_s: float = Field(default=600.0, ge=0)
    # At most this many live calls in one process (unset = no bound); over it the voice
    # webhook redirects Twilio to PUBLIC_BASE_URL so the load balancer picks another.
    max_calls_per_process: int | None = Field(default=None, ge=1)
    # Bytes the TTS disk cache (TTS_CACHE_DIR) may hold; least recently used out first.
    tts_cache_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_forwarded_allow_ips(cls, value: str | None) -> str | None:
        """Every entry an address or a network, or the whole setting ``*``: uvicorn's
        middleware keeps anything else as a literal no peer address equals, which would
        leave the proxy silently untrusted (one throttle bucket for all behind it)."""
        if value is None or not value.strip():
            return None
        entries = [item.strip() for item in value.split(",") if item.strip()]
        if entries == ["*"]:
            return "*"
        bad = []
        for entry in entries:
            try:
                if "/" in entry:
                    ipaddress.ip_network(entry)
                else:
                    ipaddress.ip_address(entry)
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))} is not an IP address or "
                "network (comma-separated, e.g. 10.0.0.2,172.16.0.0/12), nor '*' alone"
            )
        return ",".join(entries)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str) -> str:
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            value = "postgresql+asyncpg://" + value.removeprefix("postgresql://")
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            value = "sqlite+aiosqlite://" + value.removeprefix("sqlite://")
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql:// or sqlite:// URL")
        if value.startswith("postgresql+asyncpg://"):
            value = _asyncpg_query(value)
        _check_port(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        _check_port(value)
        return value

    @field_validator("broker_url")
    @classmethod
    def _valid_broker_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
            raise ValueError("must be an amqp:// (RabbitMQ) or redis:// URL")
        _check_port(value)
        if value.startswith("amqp"):
            import pika  # the RabbitMQ client parses the URL the same way when it connects

            try:
                pika.URLParameters(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"RabbitMQ refuses it: {exc}") from exc
        return value

    @field_validator("webhook_url")
    @classmethod
    def _valid_webhook_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _valid_public_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        _check_port(value)
        return value.rstrip("/")

    @field_validator("business_days")
    @classmethod
    def _valid_business_days(cls, value: str) -> str:
        days = [d.strip().lower()[:3] for d in value.split(",") if d.strip()]
        unknown = [d for d in days if d not in WEEKDAY_NAMES]
        if unknown or not days:
            raise ValueError(f"unknown day names {unknown}; use sun,mon,tue,wed,thu,fri,sat")
        return ",".join(days)

    # Derived values.

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def business_weekdays(self) -> frozenset[int]:
        """Python weekday numbers (Monday=0) on which meetings may be booked."""
        return frozenset(WEEKDAY_NAMES[d] for d in self.business_days.split(","))

    @property
    def media_stream_url(self) -> str:
        """The wss:// URL Twilio opens for the Media Stream, derived from the public URL."""
        base = self.public_base_url
        scheme, rest = base.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/twilio/media"

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def stream_secret(self) -> bytes:
        """Key for signing stream tokens: SECRET_KEY, else the Twilio auth token."""
        for secret in (self.secret_key, self.twilio_auth_token):
            if secret is not None and secret.get_secret_value():
                return secret.get_secret_value().encode()
        return _PROCESS_SECRET

    def verifying_secrets(self, now_s: float | None = None) -> tuple[bytes, ...]:
        """Keys a token may be signed with: the current one, and ``SECRET_KEY_PREVIOUS``
        until one ``STREAM_TOKEN_TTL_S`` after this process started."""
        keys = [self.stream_secret]
        previous = self.secret_key_previous
        now = clock.time() if now_s is None else now_s
        if previous is not None and now < _PROCESS_STARTED_S + self.stream_token_ttl_s:
            keys.append(previous.get_secret_value().encode())
        return tuple(keys)

    @property
    def resolved_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "console" if sys.stderr.isatty() else "json"

    def provider(self, stage: Stage) -> ProviderEndpoint:
        """Resolve one stage's endpoint from its own settings and the shared OpenAI ones."""
        own_url: str | None = getattr(self, f"{stage}_base_url")
        own_key: SecretStr | None = getattr(self, f"{stage}_api_key")
        base_url = own_url or self.openai_base_url or DEFAULT_OPENAI_BASE_URL
        key = own_key or self.openai_api_key
        configured = key is not None or own_url is not None or self.openai_base_url is not None
        return ProviderEndpoint(
            stage=stage,
            base_url=base_url.rstrip("/"),
            # A self-hosted OpenAI-compatible server may need no key; the client needs one.
            api_key=key or SecretStr("not-needed"),
            model=getattr(self, f"{stage}_model"),
            timeout_s=getattr(self, f"{stage}_timeout_s"),
            configured=configured,
        )

    @property
    def resolved_conversation_mode(self) -> Literal["stream", "gather"]:
        """How calls converse: ``auto`` is gather when no STT provider is configured."""
        if self.conversation_mode != "auto":
            return self.conversation_mode
        return "stream" if self.provider("stt").configured else "gather"

    def summary(self) -> dict[str, Any]:
        """Configuration for /health/info: no secrets, URLs with credentials masked."""
        return {
            "database": mask_url(self.database_url),
            "redis": mask_url(self.redis_url) if self.redis_url else None,
            "broker": mask_url(self.broker_url) if self.broker_url else None,
            "api_key_required": self.api_key is not None,
            "api_auth": self.api_auth,
            "twilio_configured": bool(self.twilio_account_sid and self.twilio_auth_token),
            "public_base_url": mask_url(self.public_base_url),
            "timezone": self.timezone,
            "conversation_mode": self.resolved_conversation_mode,
            "stt": _endpoint_summary(self.provider("stt")),
            "stt_mode": self.stt_mode,
            "llm": _endpoint_summary(self.provider("llm")),
            "tts": _endpoint_summary(self.provider("tts")),
            "log_format": self.resolved_log_format,
        }


WEEKDAY_NAMES = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}

# Without SECRET_KEY or a Twilio token, stream tokens are signed with a per-process key:
# fine for one dev process, wrong for several instances (documented in .env.example).
_PROCESS_SECRET: bytes = secrets.token_bytes(32)
_PROCESS_STARTED_S: float = clock.time()


def _is_blank(value: Any) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and not value.strip()


# libpq's sslmode (what managed Postgres hands out) under asyncpg's name, and the
# parameters asyncpg.connect takes as text from a URL through SQLAlchemy (numeric ones
# would reach it as strings).
_LIBPQ_TO_ASYNCPG = {"sslmode": "ssl"}
_ASYNCPG_URL_PARAMETERS = frozenset(
    {
        "user",
        "password",
        "passfile",
        "host",
        "port",
        "database",
        "ssl",
        "prepared_statement_cache_size",
        "target_session_attrs",
        "krbsrvname",
        "gsslib",
    }
)


def _asyncpg_query(url: str) -> str:
    """Rename libpq's ``sslmode`` to asyncpg's ``ssl``;
    raise ValueError naming a parameter the driver would refuse at the first connection."""
    base, qmark, query = url.partition("?")
    if not qmark:
        return url
    pairs = [(_LIBPQ_TO_ASYNCPG.get(k, k), v) for k, v in parse_qsl(query, keep_blank_values=True)]
    unknown = sorted({k for k, _ in pairs} - _ASYNCPG_URL_PARAMETERS)
    if unknown:
        raise ValueError(
            f"query parameter {', '.join(unknown)} is not understood by the Postgres driver "
            f"(asyncpg); use {', '.join(sorted(_ASYNCPG_URL_PARAMETERS | set(_LIBPQ_TO_ASYNCPG)))}"
        )
    return f"{base}?{urlencode(pairs)}"


def _check_port(url: str) -> None:
    """Raise ValueError for a port that is not a number in 0-65535 (each client found out
    at its first connection, with a traceback). Multi-host URLs are left to the driver."""
    netloc = urlsplit(url).netloc
    if "," in netloc:
        return
    try:
        urlsplit(url).port  # noqa: B018 - the property validates
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from exc


def _endpoint_summary(endpoint: ProviderEndpoint) -> dict[str, Any]:
    return {
        "configured": endpoint.configured,
        "base_url": mask_url(endpoint.base_url),
        "model": endpoint.model,
    }


def mask_url(url: str) -> str:
    """Hide a URL's user-info and every query value (``postgresql://***@host/db?sslmode=***``).

    What is left (scheme, host, port, path, query names) is what an operator needs to
    see where a service points; credentials ride in user-info, the query or the fragment.
    """
    head, sep, rest = url.partition("://")
    if not sep:
        head, rest = "", url
    rest, _, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    slash = rest.find("/")
    netloc, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    if query:
        names = [part.split("=", 1)[0] for part in query.replace(";", "&").split("&") if part]
        query = "&".join(f"{name}=***" for name in names)
    masked = (f"{head}://" if sep else "") + netloc + path + (qmark + query if qmark else "")
    return masked + ("#***" if fragment else "")


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment, raising ConfigError that names the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc
