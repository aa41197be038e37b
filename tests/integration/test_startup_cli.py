"""Start-up and CLI errors are one line naming the cause and the fix; readiness knows the schema."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings
from tests.unit.core.test_startup import _voicebot
from voicebot.app import create_app
from voicebot.cli import migrate


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_serve_on_an_unmigrated_database_names_the_fix(tmp_path: Path) -> None:
    """`voicebot serve` run from a folder whose SQLite file was never migrated says so,
    with the absolute file and `voicebot migrate`, and exits 2."""
    result = _voicebot(["serve", "--port", "1"], {"DATABASE_URL": "sqlite:///./v.db"}, tmp_path)
    line = _one_line(result.stderr)
    assert result.returncode == 2
    assert "not migrated" in line and "voicebot migrate" in line
    assert str(tmp_path / "v.db") in line


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["migrate"]])
def test_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """A Postgres URL on a closed port: one line naming DATABASE_URL, password masked."""
    url = "postgresql://u:hunter2@127.0.0.1:1/none"
    result = _voicebot(command, {"DATABASE_URL": url}, tmp_path)
    line = _one_line(result.stderr)
    assert result.returncode == 2
    assert "DATABASE_URL" in line
    assert "hunter2" not in line


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    """A bad value names its variable in one line."""
    result = _voicebot(["migrate"], {"TIMEZONE": "Mars/Base"}, tmp_path)
    assert "TIMEZONE" in _one_line(result.stderr)
    assert result.returncode == 2


def test_migrate_then_serve_from_another_folder_work(tmp_path: Path) -> None:
    """Migrations ship in the package: `voicebot migrate` works from any folder."""
    result = _voicebot(["migrate"], {"DATABASE_URL": "sqlite:///./v.db"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "v.db").exists()


async def test_ready_is_503_when_the_schema_is_behind_head(tmp_path: Path) -> None:
    """A database one migration behind the code: /health/ready 503 naming `schema`."""
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/old.db")
    migrate(settings, "0001")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["schema"]
        assert "voicebot migrate" in ready.json()["checks"]["schema"]
    migrate(settings)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/health/ready")).status_code == 200


async def test_health_info_masks_every_url(database_url: str) -> None:
    """DATABASE_URL ?password= and STT_BASE_URL ?api_key= never show on /health/info."""
    url = database_url + ("&" if "?" in database_url else "?") + "password=pw-db"
    if database_url.startswith("sqlite"):
        url = database_url  # SQLite takes no query; the STT URL still carries a key
    settings = make_settings(
        database_url=url, stt_base_url="http://stt.local/v1?api_key=pw-stt", api_key="pw-api"
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        body = (await client.get("/health/info")).json()
    text = json.dumps(body)
    assert "pw-" not in text
    assert body["config"]["stt"]["base_url"] == "http://stt.local/v1?api_key=***"


async def test_an_empty_api_key_header_never_passes(database_url: str) -> None:
    """`X-API-Key;` (empty) is refused when a key is set; `API_KEY=` means no key at all,
    and /health/info says so."""
    app = create_app(make_settings(database_url=database_url, api_key="real-key"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/api/v1/leads", headers={"X-API-Key": ""})).status_code == 401
        bearer = await client.get("/api/v1/leads", headers={"Authorization": "Bearer "})
        assert bearer.status_code == 401
    app = create_app(make_settings(database_url=database_url, api_key=""))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        info = (await client.get("/health/info")).json()
        assert info["config"]["api_key_required"] is False


@pytest.mark.parametrize("query", ["sslmode=disable", "sslmode=prefer&target_session_attrs=any"])
def test_libpq_query_parameters_in_a_postgres_url_work(
    tmp_path: Path, postgres_url: str, query: str
) -> None:
    """`?sslmode=` (what managed Postgres hands out) is understood: `voicebot migrate`
    succeeds (it was a 97-line TypeError traceback)."""
    url = postgres_url.replace("postgresql+asyncpg://", "postgres://") + "?" + query
    result = _voicebot(["migrate"], {"DATABASE_URL": url}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["migrate"]])
def test_unknown_postgres_url_parameter_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """A query parameter the driver does not take is one line naming DATABASE_URL and the
    parameter, password masked (it was a TypeError traceback from deep in asyncpg)."""
    url = "postgresql://u:hunter2@127.0.0.1:1/db?sslmode=require&connect_timeout=5"
    result = _voicebot(command, {"DATABASE_URL": url}, tmp_path)
    line = _one_line(result.stderr)
    assert result.returncode == 2
    assert "DATABASE_URL" in line and "connect_timeout" in line
    assert "hunter2" not in line


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("BROKER_URL", "amqp://guest:hunter2@127.0.0.1:5672/%2f?token=x"),
        ("REDIS_URL", "redis://:hunter2@127.0.0.1:99999/1"),
    ],
)
def test_a_bad_service_url_is_one_line(tmp_path: Path, variable: str, url: str) -> None:
    """`voicebot serve` with a broker URL pika refuses or a port past 65535: one line naming
    the variable, exit 2 (it was a traceback from the lifespan or the Redis client)."""
    env = {"DATABASE_URL": "sqlite:///./v.db"}
    assert _voicebot(["migrate"], env, tmp_path).returncode == 0
    result = _voicebot(["serve", "--port", "1"], {**env, variable: url}, tmp_path)
    line = _one_line(result.stderr)
    assert result.returncode == 2
    assert variable in line and "hunter2" not in line
