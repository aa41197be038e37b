"""The built wheel, installed in a fresh virtualenv outside the source tree, migrates and
serves on SQLite and Postgres: the commands the Docker image and compose file run."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import fresh_postgres_database
from voicebot.config import Settings
from voicebot.testing.server import free_port

# The wheel is built without build isolation and installed without its dependencies into
# a fresh pip-less virtualenv that sees this environment's site-packages through a .pth
# line (dependencies are what `pip install -e .[dev]` already installed): a few seconds
# instead of minutes of resolving and unpacking every dependency again. What is proven is
# unchanged: the package, its entry point, data files and migrations come from the wheel.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SOURCE_ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 240
SERVE_READY_TIMEOUT_S = 60.0
PRODUCTION_ENV = {
    # What a production .env holds (README, "Production start"): a public URL, so every
    # start-up safety check runs on the installed package too.
    "PUBLIC_BASE_URL": "https://voice.example.com",
    "SECRET_KEY": "x" * 64,
    "API_KEY": "k" * 40,
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "LOG_FORMAT": "json",
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (outside the source tree) with the wheel built from this tree."""
    root = tmp_path_factory.mktemp("packaged")
    assert SOURCE_ROOT not in root.parents
    dist = root / "dist"
    pip = [sys.executable, "-m", "pip"]
    isolation = ["--no-build-isolation"] if _has_build_backend() else []
    build = [*pip, "wheel", "-q", "--no-deps", *isolation, "-w", str(dist), str(SOURCE_ROOT)]
    _run(build, root)
    (wheel,) = dist.glob("voicebot-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    python = venv / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root)
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site.stdout.strip()) / "_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    _run(
        [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-compile", str(wheel)],
        root,
    )
    probe = "import voicebot; print(voicebot.__file__)"
    where = _run([str(python), "-c", probe], root)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    return venv


def _has_build_backend() -> bool:
    """setuptools able to build a wheel here (70.1 has bdist_wheel; older needs ``wheel``),
    so the build needs no isolated environment of its own."""
    try:
        return importlib.util.find_spec("setuptools.command.bdist_wheel") is not None or (
            importlib.util.find_spec("wheel") is not None
        )
    except ImportError:  # no setuptools at all
        return False


def _clean_env(**settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in Settings.model_fields and k not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**env, **settings}


def _run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - our own interpreter and commands
        command,
        cwd=cwd,
        env=env or _clean_env(),
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{command}: {result.stderr[-3000:]}"
    return result


def _migrate_and_serve(venv: Path, workdir: Path, env: dict[str, str]) -> dict[str, object]:
    """``voicebot migrate`` then ``voicebot serve`` from ``workdir``; /health/ready's body."""
    voicebot = str(venv / "bin" / "voicebot")
    _run([voicebot, "migrate"], workdir, env)
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - the installed CLI with fixed arguments
            [voicebot, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2.0)
                if ready.status_code == 200:
                    body: dict[str, object] = ready.json()
                    return body
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_wheel_migrates_and_serves_on_sqlite(installed: Path, tmp_path: Path) -> None:
    """From a folder outside the tree, a relative SQLite file is migrated and served."""
    env = _clean_env(DATABASE_URL="sqlite:///./voicebot.db", **PRODUCTION_ENV)
    body = _migrate_and_serve(installed, tmp_path, env)
    assert body["status"] == "ready"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert (checks["sqlite"], checks["schema"]) == ("ok", "ok")
    assert (tmp_path / "voicebot.db").exists()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """An empty Postgres database of this test's own (not migrated)."""
    with fresh_postgres_database("voicebot_pkg") as url:
        yield url


@pytest.mark.integration
def test_wheel_migrates_and_serves_on_postgres(
    installed: Path, tmp_path: Path, postgres_database: str
) -> None:
    """The same commands on a fresh Postgres database."""
    env = _clean_env(DATABASE_URL=postgres_database, **PRODUCTION_ENV)
    body = _migrate_and_serve(installed, tmp_path, env)
    assert body["status"] == "ready"
    assert body["checks"] == {"postgres": "ok", "schema": "ok", "broker": "ok"} | {
        k: v
        for k, v in body["checks"].items()
        if k not in ("postgres", "schema", "broker")  # type: ignore[attr-defined]
    }
