"""The one command surface: ``voicebot serve | worker | migrate | import-leads | demo |
loadtest | say | campaign status``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from voicebot.config import Settings, load_settings
from voicebot.db.schema import MIGRATIONS_DIR, DatabaseUnavailableError, describe_database
from voicebot.errors import ConfigError, InvalidInputError, VoicebotError
from voicebot.loadtest.cli import build_parser as build_loadtest_parser
from voicebot.loadtest.cli import run as run_loadtest

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
IMPORT_PROGRESS_MIN_ROWS = 1000  # smaller files import too fast for a progress bar
PREFLIGHT_TIMEOUT_S = 10.0
EXIT_CONFIG = 2
"""Exit status for a setting or environment problem (bad value, database, schema)."""


def alembic_config(settings: Settings) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = settings.database_url
    config.attributes["configure_logger"] = False
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    """Upgrade the schema; raises :class:`DatabaseUnavailableError` (one line) when the
    database cannot be reached and :class:`ConfigError` for an unknown revision."""
    from alembic import command
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        command.upgrade(alembic_config(settings), revision)  # type: ignore[arg-type]
    except CommandError as exc:
        raise ConfigError(f"cannot migrate to {revision!r}: {exc}") from exc
    except (OSError, SQLAlchemyError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:200]
        raise DatabaseUnavailableError(
            f"cannot migrate {describe_database(settings.database_url)}: "
            f"{type(exc).__name__}: {reason}; check DATABASE_URL and that the database "
            "server is running"
        ) from exc


def preflight(settings: Settings) -> None:
    """Before serving: refuse an unsafe public deployment and a database that is down or
    not at the head revision, each as one :class:`ConfigError` line."""
    from voicebot.db.engine import create_engine
    from voicebot.db.schema import require_schema_at_head
    from voicebot.startup import check_deployment

    check_deployment(settings)

    async def check() -> None:
        engine = create_engine(settings)
        try:
            async with asyncio.timeout(PREFLIGHT_TIMEOUT_S):
                await require_schema_at_head(engine, settings.database_url)
        except TimeoutError as exc:
            raise DatabaseUnavailableError(
                f"database {describe_database(settings.database_url)} did not answer within "
                f"{PREFLIGHT_TIMEOUT_S:.0f} s; check DATABASE_URL and the database server"
            ) from exc
        finally:
            await engine.dispose()

    asyncio.run(check())


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from voicebot.api.websocket_protocol import WEBSOCKET_SERVER_OPTIONS
    from voicebot.app import create_app
    from voicebot.graceful import AFTER_DRAIN_GRACE_S, DrainingServer, run_workers

    if workers > 1:
        # Each worker builds its app from the environment, as the single process does.
        run_workers(
            uvicorn.Config(
                "voicebot.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_config=None,
                proxy_headers=False,  # the app trusts FORWARDED_ALLOW_IPS itself
                **WEBSOCKET_SERVER_OPTIONS,
                timeout_graceful_shutdown=AFTER_DRAIN_GRACE_S,
            )
        )
        return

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        proxy_headers=False,  # the app trusts FORWARDED_ALLOW_IPS itself
        **WEBSOCKET_SERVER_OPTIONS,
        timeout_graceful_shutdown=AFTER_DRAIN_GRACE_S,
    )
    server = DrainingServer(
        config, registry=app.state.call_registry, drain_timeout_s=settings.drain_timeout_s
    )
    server.run()


async def import_leads_file(
    settings: Settings,
    raw: bytes,
    mapping: dict[str, str] | None = None,
    *,
    progress_min_rows: int | None = None,
) -> dict[str, object]:
    """Import a CSV file's bytes as the API does; a progress bar on stderr from
    ``progress_min_rows`` rows. Raises InvalidInputError for an unusable file."""
    from voicebot.api.lead_csv import parse_lead_csv
    from voicebot.api.lead_import import import_leads
    from voicebot.db.engine import create_engine, create_sessionmaker

    parsed = parse_lead_csv(raw, mapping)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            if progress_min_rows is None or parsed.total_rows < progress_min_rows:
                return await import_leads(session, parsed)
            from rich.progress import Progress

            with Progress(console=_stderr_console(), transient=True) as bar:
                task = bar.add_task("importing leads", total=parsed.total_rows)
                return await import_leads(
                    session, parsed, on_progress=lambda done: bar.update(task, completed=done)
                )
    finally:
        await engine.dispose()


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def run_import_leads(settings: Settings, path: Path, mappings: list[str]) -> int:
    """``voicebot import-leads``: the JSON report on stdout; exit 0 when every row was
    imported, 1 when some rows failed, 2 (one line on stderr) when the file is unusable."""
    import json

    from sqlalchemy.exc import SQLAlchemyError

    from voicebot.api.lead_csv import parse_mapping

    try:
        mapping = parse_mapping(mappings) or None
        raw = path.read_bytes()
        report = asyncio.run(
            import_leads_file(settings, raw, mapping, progress_min_rows=IMPORT_PROGRESS_MIN_ROWS)
        )
    except InvalidInputError as exc:
        print(f"voicebot import-leads: {path}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"voicebot import-leads: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(
            f"voicebot import-leads: database error ({reason}); run 'voicebot migrate'?",
            file=sys.stderr,
        )
        return 2
    try:
        print(json.dumps(report, ensure_ascii=False, indent=2), flush=True)
    except BrokenPipeError:  # `| head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if report["failed"] == 0 else 1


def run_worker_process(settings: Settings) -> None:
    import signal
    import threading

    from voicebot.jobs.actors import run_worker
    from voicebot.logging import configure_logging

    configure_logging(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def wait_for_signal() -> None:
        stop.wait()

    run_worker(settings, wait=wait_for_signal)


def run_say(settings: Settings, text: str, wav_path: Path | None) -> int:
    """``voicebot say``: the spoken form on stdout; 2 with one line when audio fails."""
    from voicebot.errors import ProviderError
    from voicebot.say import say

    try:
        print(asyncio.run(say(settings, text, wav_path=wav_path)))
    except (ProviderError, OSError) as exc:
        print(f"voicebot say: {exc}", file=sys.stderr)
        return 2
    if wav_path is not None:
        print(f"audio: {wav_path}", file=sys.stderr)
    return 0


def _positive_s(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def add_campaign_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``voicebot campaign status ID [--watch]`` (reads the database directly)."""
    p_campaign = sub.add_parser("campaign", help="campaign operations")
    campaign_sub = p_campaign.add_subparsers(dest="campaign_command", required=True)
    p_status = campaign_sub.add_parser("status", help="progress of one campaign")
    p_status.add_argument("campaign_id", type=int, metavar="ID")
    p_status.add_argument("--watch", action="store_true", help="redraw until it completes")
    p_status.add_argument(
        "--interval", type=_positive_s, default=2.0, help="seconds between redraws"
    )
    p_status.add_argument("--json", action="store_true", help="print one JSON snapshot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voicebot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the web process")
    p_serve.add_argument("--host", default=DEFAULT_HOST)
    p_serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    p_serve.add_argument("--workers", type=int, default=1)
    p_serve.add_argument("--migrate", action="store_true", help="upgrade the schema first")
    p_mig = sub.add_parser("migrate", help="upgrade the database schema")
    p_mig.add_argument("revision", nargs="?", default="head")
    p_load = sub.add_parser("loadtest", help="simulate concurrent Twilio calls against a server")
    build_loadtest_parser(p_load)
    sub.add_parser("worker", help="run the Dramatiq worker (campaign dialing)")
    p_imp = sub.add_parser("import-leads", help="import leads from a CSV file")
    p_imp.add_argument("file", type=Path)
    p_imp.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="which column holds a lead field (phone, name, first_name, last_name, company, "
        "email, tags, notes), e.g. --map phone=מספר; repeatable",
    )
    p_demo = sub.add_parser("demo", help="one simulated Hebrew call that books a meeting")
    p_demo.add_argument("--wav", type=Path, default=Path("demo-call.wav"), help="recording")
    p_say = sub.add_parser("say", help="print the spoken form the TTS receives for TEXT")
    p_say.add_argument("text", help="Hebrew text as a script or the brain writes it")
    p_say.add_argument("--wav", type=Path, default=None, help="also write the audio here")
    add_campaign_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "loadtest":
        # A client of some running server: it needs none of this process's settings.
        return run_loadtest(args)
    try:
        return _run(args)
    except ConfigError as exc:
        # Start-up problems are one line naming the cause and the fix, never a traceback.
        print(f"voicebot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except VoicebotError as exc:
        print(f"voicebot: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.command == "migrate":
        migrate(settings, args.revision)
        return 0
    if args.command == "serve":
        if args.migrate:
            migrate(settings)
        preflight(settings)
        serve(settings, args.host, args.port, args.workers)
        return 0
    if args.command == "worker":
        preflight(settings)
        run_worker_process(settings)
        return 0
    if args.command == "say":
        return run_say(settings, args.text, args.wav)
    if args.command == "demo":
        from voicebot.demo import run_command

        return run_command(settings, wav_path=args.wav)
    if args.command == "campaign":
        from voicebot.jobs.status_view import run_status

        return run_status(
            settings,
            args.campaign_id,
            watch=args.watch,
            interval_s=args.interval,
            as_json=args.json,
        )
    if args.command == "import-leads":
        return run_import_leads(settings, args.file, args.map)
    return 2


if __name__ == "__main__":
    sys.exit(main())
