"""Start-up safety: a public deployment with a weak or missing secret refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from voicebot.config import Settings
from voicebot.errors import ConfigError
from voicebot.startup import check_deployment, is_loopback_url

PUBLIC = "https://voice.example.com"
STRONG_SECRET = "k" * 40
SAFE_PUBLIC: dict[str, Any] = {
    "public_base_url": PUBLIC,
    "secret_key": STRONG_SECRET,
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "t" * 32,
    "api_key": "a" * 32,
}


def _public(**overrides: Any) -> Settings:
    return make_settings(**{**SAFE_PUBLIC, **overrides})


def test_a_safe_public_deployment_starts_without_warnings() -> None:
    """Strong SECRET_KEY, Twilio token and API key: no refusal, no warning."""
    assert check_deployment(_public()) == []


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"secret_key": None}, "SECRET_KEY"),
        ({"secret_key": ""}, "SECRET_KEY"),
        ({"secret_key": "change-me"}, "SECRET_KEY"),
        ({"secret_key": "CHANGEME"}, "SECRET_KEY"),
        ({"secret_key": "short-but-random-7fq"}, "SECRET_KEY"),
        ({"twilio_auth_token": None}, "TWILIO_AUTH_TOKEN"),
        ({"twilio_auth_token": "  "}, "TWILIO_AUTH_TOKEN"),
        ({"api_key": None}, "API_KEY"),
        ({"api_key": ""}, "API_KEY"),
        ({"api_key": "k7Fq2xLp"}, "API_KEY"),
        ({"api_key": "change-me"}, "API_KEY"),
        ({"secret_key_previous": "change-me"}, "SECRET_KEY_PREVIOUS"),
        ({"secret_key_previous": "short-but-random-7fq"}, "SECRET_KEY_PREVIOUS"),
    ],
)
def test_unsafe_public_deployment_is_refused_naming_the_variable(
    overrides: dict[str, Any], variable: str
) -> None:
    """A non-loopback PUBLIC_BASE_URL with a missing, default or short secret is refused;
    SECRET_KEY_PREVIOUS too, since tokens signed with it are accepted after each start."""
    with pytest.raises(ConfigError, match=variable) as info:
        check_deployment(_public(**overrides))
    assert "\n" not in str(info.value)


def test_an_open_api_must_be_declared() -> None:
    """API_AUTH=none lets a public deployment run without API_KEY; with a key it contradicts."""
    assert check_deployment(_public(api_key=None, api_auth="none")) == []
    with pytest.raises(ConfigError, match="API_AUTH"):
        check_deployment(_public(api_auth="none"))


def test_loopback_runs_with_nothing_set() -> None:
    """A loopback deployment (dev, tests, demo) needs no secret at all."""
    assert check_deployment(make_settings()) == []
    assert check_deployment(make_settings(public_base_url="http://localhost:9000")) == []


def test_twilio_with_a_loopback_url_is_a_loud_warning() -> None:
    """Twilio configured while PUBLIC_BASE_URL is loopback: every webhook would fail."""
    warnings = check_deployment(make_settings(twilio_auth_token="t" * 32))
    assert len(warnings) == 1
    assert "PUBLIC_BASE_URL" in warnings[0]


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.9.9.9", True),
        ("http://[::1]:8000", True),
        ("http://localhost", True),
        ("https://voice.example.com", False),
        ("http://10.0.0.5:8000", False),
        ("http://0.0.0.0:8000", False),
    ],
)
def test_loopback_detection(url: str, loopback: bool) -> None:
    """Only this machine's addresses count as loopback."""
    assert is_loopback_url(url) is loopback


def _voicebot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("voicebot")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "voicebot.cli"]
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    return subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
        [*command, *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"]])
def test_serve_with_change_me_on_a_public_url_exits_naming_secret_key(
    tmp_path: Path, command: list[str]
) -> None:
    """`voicebot serve` (and `worker`) with PUBLIC_BASE_URL=https://voice.example.com and
    SECRET_KEY=change-me exits non-zero with one line naming SECRET_KEY, before starting."""
    result = _voicebot(
        command,
        {"PUBLIC_BASE_URL": PUBLIC, "SECRET_KEY": "change-me", "DATABASE_URL": "sqlite:///x.db"},
        tmp_path,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_with_a_short_api_key_on_a_public_url_exits_2_naming_api_key(
    tmp_path: Path,
) -> None:
    """An 8-character API_KEY on a public deployment is refused like a short SECRET_KEY:
    one line naming API_KEY, exit 2, before starting."""
    env = {
        "PUBLIC_BASE_URL": PUBLIC,
        "SECRET_KEY": STRONG_SECRET,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "API_KEY": "k7Fq2xLp",
        "DATABASE_URL": "sqlite:///x.db",
    }
    result = _voicebot(["serve", "--port", "1"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("voicebot: API_KEY is shorter than"), lines[0]
    assert "k7Fq2xLp" not in lines[0]
