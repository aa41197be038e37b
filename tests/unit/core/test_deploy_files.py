"""docker-compose.yml, the Dockerfile and .env.example: settings through env_file, no
insecure defaults, every setting documented (Docker itself is not run here; the packaging
test runs the same commands on the installed wheel)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from voicebot.config import Settings

ROOT = Path(__file__).resolve().parents[3]
SECRETS = ("SECRET_KEY", "SECRET_KEY_PREVIOUS", "API_KEY", "TWILIO_AUTH_TOKEN", "OPENAI_API_KEY")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_passes_settings_through_env_file_without_secret_defaults() -> None:
    """migrate, web and worker read .env; no secret is set or defaulted in the file."""
    services = _compose()["services"]
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("migrate", "web", "worker"):
        service = services[name]
        assert service["env_file"] == [".env"], name
        assert not set(service.get("environment", {})) & set(SECRETS), name
    assert ":-}" not in text, "an empty default passes an empty value through"
    assert "change-me" not in text.lower()
    assert "POSTGRES_PASSWORD:?" in text, "the database password has no default"


def test_compose_and_dockerfile_run_the_tested_commands() -> None:
    """The commands are the ones tests/integration/test_packaging.py runs on the wheel."""
    services = _compose()["services"]
    assert services["migrate"]["command"] == ["voicebot", "migrate"]
    assert services["web"]["command"][:2] == ["voicebot", "serve"]
    assert services["worker"]["command"] == ["voicebot", "worker"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN pip install ." in dockerfile
    assert 'CMD ["voicebot", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
    assert "USER voicebot" in dockerfile


def test_env_example_documents_every_setting_and_sets_no_secret() -> None:
    """Each Settings field appears in .env.example; secrets are left unset there."""
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    missing = sorted(f.upper() for f in Settings.model_fields if f.upper() not in documented)
    assert missing == []
    for name in SECRETS:
        assert not re.search(rf"^{name}=\S", text, re.MULTILINE), name


def test_readme_shows_the_production_start() -> None:
    """The README has a production start with the secrets the server insists on."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Production start", 1)[1].split("\n## ", 1)[0]
    for needed in ("SECRET_KEY", "API_KEY", "TWILIO_AUTH_TOKEN", "docker compose", "migrate"):
        assert needed in section, needed
