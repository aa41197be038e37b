"""Start-up checks: a public deployment that is not safe refuses to start.

A deployment is *public* when ``PUBLIC_BASE_URL`` is not a loopback address: Twilio and
the whole internet can reach it. Such a deployment needs a strong ``SECRET_KEY`` (it signs
stream tokens and audio keys: a known key lets anyone open a call's media stream or
synthesize any text), a ``TWILIO_AUTH_TOKEN`` (webhook signatures) and an ``API_KEY``
unless ``API_AUTH=none`` says the API is meant to be open. A loopback deployment may run
with none of these (development, tests, the demo).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from voicebot.config import Settings
from voicebot.errors import ConfigError

MIN_SECRET_KEY_CHARS = 32
"""Shortest SECRET_KEY (and API_KEY) accepted on a public deployment (``openssl rand -hex 32``
gives 64)."""
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "changethis",
        "secret",
        "secret-key",
        "secret_key",
        "password",
        "default",
        "voicebot",
        "development",
        "dev",
        "test",
    }
)
"""Values copied from examples and tutorials; refused whatever their length."""
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SECRET_KEY_HINT = "generate one with `openssl rand -hex 32`"  # noqa: S105 - advice, not a key
API_KEY_HINT = SECRET_KEY_HINT


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (127.0.0.0/8, ::1, localhost)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_deployment(settings: Settings) -> list[str]:
    """Refuse an unsafe public deployment; return warnings for a risky local one.

    Raises :class:`ConfigError` whose message is one line naming the first variable at
    fault and how to fix it. Returns human-readable warnings (possibly empty).
    """
    if settings.api_auth == "none" and settings.api_key is not None:
        raise ConfigError("API_AUTH=none contradicts API_KEY being set; unset one of them")
    warnings: list[str] = []
    twilio_configured = bool(settings.twilio_account_sid or settings.twilio_auth_token)
    if is_loopback_url(settings.public_base_url):
        if twilio_configured:
            warnings.append(
                f"PUBLIC_BASE_URL is {settings.public_base_url} (loopback) while Twilio is "
                "configured: Twilio cannot reach it and every real webhook will fail its "
                "signature check; set PUBLIC_BASE_URL to the https URL Twilio reaches"
            )
        return warnings
    where = f"PUBLIC_BASE_URL={settings.public_base_url} is public"
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    if secret is None:
        raise ConfigError(f"SECRET_KEY is not set but {where}; {SECRET_KEY_HINT}")
    _check_secret_strength("SECRET_KEY", secret, where, SECRET_KEY_HINT)
    if settings.secret_key_previous is not None:
        # Tokens signed with it are accepted for one TTL after every start.
        _check_secret_strength(
            "SECRET_KEY_PREVIOUS",
            settings.secret_key_previous.get_secret_value(),
            where,
            "unset it: a weak key lets anyone forge tokens after each start",
        )
    if settings.twilio_auth_token is None:
        raise ConfigError(
            f"TWILIO_AUTH_TOKEN is not set but {where}: webhook signatures cannot be checked; "
            "set it from the Twilio console"
        )
    if settings.api_key is None and settings.api_auth != "none":
        raise ConfigError(
            f"API_KEY is not set but {where}: the API would be open to anyone; set API_KEY, "
            "or API_AUTH=none if the API is meant to be open"
        )
    if settings.api_key is not None:
        # The API key guards every lead and call record: the same bar as SECRET_KEY.
        _check_secret_strength("API_KEY", settings.api_key.get_secret_value(), where, API_KEY_HINT)
    return warnings


def _check_secret_strength(variable: str, secret: str, where: str, fix: str) -> None:
    """Raise :class:`ConfigError` naming ``variable`` for a known default or short key."""
    if secret.strip().lower() in KNOWN_DEFAULT_SECRETS:
        raise ConfigError(f"{variable} is a known default value but {where}; {fix}")
    if len(secret) < MIN_SECRET_KEY_CHARS:
        raise ConfigError(
            f"{variable} is shorter than {MIN_SECRET_KEY_CHARS} characters but {where}; {fix}"
        )
