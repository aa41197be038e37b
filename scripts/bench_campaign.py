"""Campaign engine benchmarks (#9): scheduling, pacing accuracy, status-callback latency.

    python scripts/bench_campaign.py schedule --leads 10000     # one sweep decides 10,000
    python scripts/bench_campaign.py pacing --cps 2 --seconds 60
    python scripts/bench_campaign.py callbacks --rate 200 --seconds 30 [--workers 2]
    python scripts/bench_campaign.py callback-cpu --calls 300  # app CPU per callback

All three run on a fresh Postgres database (``VOICEBOT_TEST_POSTGRES`` admin DSN) and
print their figures; ``pacing`` needs Redis (``VOICEBOT_TEST_REDIS``, default db 15) and
``callbacks`` starts ``voicebot serve --workers N`` (N web processes, default 1); it prints
the load average before and after (the machine may be shared), and ``--server-log`` keeps
the server's log (tracebacks of any 500), ``--profile OUT`` records it with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.config import Settings, load_settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, Campaign, CampaignAttempt, CampaignLead, CampaignStatus, Lead
from voicebot.loadtest.server_stats import stall_summary

POSTGRES_ADMIN_DSN = os.environ.get(
    "VOICEBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("VOICEBOT_TEST_REDIS", "redis://127.0.0.1:6379/15")
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-token"  # noqa: S105 - the simulator's own test credential
ALL_DAYS = "sun,mon,tue,wed,thu,fri,sat"
IDLE_SAMPLE_S = 5.0
"""How long the callbacks bench watches the idle server (sweeper, loop monitor) before the
load, so its background CPU is taken out of the CPU per callback."""
BACKEND_POLL_S = 0.5
"""How often the callbacks bench reads the CPU of its database's Postgres backends."""
MAX_CLIENT_CONNECTIONS = 200
"""Connections the callbacks client may hold open at once (Twilio opens many)."""
CLIENT_TIMEOUT_S = 10.0
"""A callback with no answer by then counts as -1."""
CPU_WARMUP_CALLS = 20
COLD_CALLS_SHOWN = 10
"""callback-cpu prints the cost of each of the first calls (one per pooled connection)."""
START_SETTLE_S = 3.0
"""callback-cpu waits this long after start-up before its first callback."""
"""Calls whose callbacks warm the app (statement caches, pool) before callback-cpu counts."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    import asyncpg

    from voicebot.cli import migrate

    name = f"voicebot_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    await asyncio.to_thread(migrate, load_settings(_env_file=None, database_url=url))
    try:
        yield url
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def seed(sessions: async_sessionmaker[AsyncSession], leads: int, **campaign: Any) -> int:
    """A running campaign over ``leads`` new leads with consent (bulk inserts)."""
    now = datetime.now(UTC)
    async with sessions() as session:
        rows = [
            {
                "phone": f"+9725{2000000 + i:08d}"[:13],
                "status": "new",
                "consent_source": "bench",
                "tags": [],
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(leads)
        ]
        await session.execute(insert(Lead), rows)
        fields: dict[str, Any] = {
            "name": "bench",
            "status": CampaignStatus.RUNNING,
            "calendar": "none",
            "window_days": ALL_DAYS,
            "window_start": "00:00",
            "window_end": "24:00",
            "max_concurrent_calls": 1000,
            "calls_per_second": 1.0,
            "started_at": now,
        }
        fields.update(campaign)
        c = Campaign(**fields)
        session.add(c)
        await session.flush()
        ids = (await session.scalars(select(Lead.id))).all()
        await session.execute(
            insert(CampaignLead),
            [
                {
                    "campaign_id": c.id,
                    "lead_id": i,
                    "state": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in ids
            ],
        )
        await session.commit()
        return c.id


def bench_settings(url: str, **extra: Any) -> Settings:
    return load_settings(
        _env_file=None,
        database_url=url,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from_number="+97233720000",
        log_level="WARNING",
        **extra,
    )


async def schedule(args: argparse.Namespace) -> None:
    """One claim pass over N due members: closed window (every lead deferred to its next
    opening on its own clock) and open window (a pass's claims)."""
    from voicebot.jobs.claims import claim_due

    async with fresh_database() as url:
        settings = bench_settings(url)
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        today = datetime.now(UTC).strftime("%a").lower()[:3]
        closed_days = ",".join(d for d in ALL_DAYS.split(",") if d != today)
        cid = await seed(sessions, args.leads, window_days=closed_days, calendar="IL")
        async with sessions() as session:
            campaign = await session.get(Campaign, cid)
            if campaign is None:
                raise SystemExit("campaign vanished")
            started = time.perf_counter()
            report = await claim_due(
                session, settings=settings, campaign=campaign, owner="bench", limit=10
            )
            closed_s = time.perf_counter() - started
        async with sessions() as session:
            decided = await session.scalar(
                text("SELECT count(*) FROM campaign_leads WHERE next_attempt_at IS NOT NULL")
            )
            await session.execute(
                text("UPDATE campaign_leads SET next_attempt_at = NULL"),
            )
            await session.execute(
                text("UPDATE campaigns SET window_days = :d, calendar = 'none'"), {"d": ALL_DAYS}
            )
            await session.commit()
        async with sessions() as session:
            campaign = await session.get(Campaign, cid)
            if campaign is None:
                raise SystemExit("campaign vanished")
            started = time.perf_counter()
            opened = await claim_due(
                session, settings=settings, campaign=campaign, owner="bench", limit=args.claims
            )
            open_s = time.perf_counter() - started
        await engine.dispose()
    print(f"schedule: {args.leads} due members, one sweep pass (Postgres)")
    print(
        f"  window closed: {report.deferred} deferred to their next opening "
        f"({decided} decided) in {closed_s:.2f} s"
    )
    print(
        f"  window open:   {len(opened.claimed)} claimed (attempt + call rows committed) "
        f"in {open_s:.3f} s"
    )


async def pacing(args: argparse.Namespace) -> None:
    """A sweeper dialing the simulator (its own process) at ``--cps`` for ``--seconds``;
    the rate measured from the simulator's JSONL log of creates over the whole span."""
    import json

    import redis.asyncio as aioredis

    from voicebot.jobs.pacing import RedisPacer
    from voicebot.jobs.sweeper import Sweeper
    from voicebot.telephony.rest import TwilioDialer

    leads = int(args.cps * (args.seconds + 30)) + 10
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="voicebot-bench-")) / "sim.jsonl"
    sim = subprocess.Popen(  # noqa: ASYNC220 - started once
        [
            sys.executable,
            "-m",
            "voicebot.testing.twilio_api_sim",
            "--port",
            str(port),
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
            "--mix",
            "busy=1",
            "--ring-s",
            "0.2",
            "--log",
            str(log_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(3)
        async with fresh_database() as url:
            settings = bench_settings(
                url,
                twilio_api_base_url=f"http://127.0.0.1:{port}",
                twilio_cps=max(args.cps * 2, 1.0),
                twilio_max_concurrent_calls=100_000,  # callbacks go nowhere: calls stay live
                campaign_sweep_interval_s=1.0,
            )
            engine = create_engine(settings)
            sessions = create_sessionmaker(engine)
            await seed(sessions, leads, calls_per_second=args.cps, max_attempts=1)
            redis = aioredis.from_url(REDIS_URL)
            await redis.flushdb()
            twilio = TwilioDialer.from_settings(settings)
            sweeper = Sweeper(
                settings=settings,
                sessions=sessions,
                twilio=twilio,
                pacer=RedisPacer(redis, account_cps=settings.twilio_cps, url=REDIS_URL),
            )
            stop = asyncio.Event()
            task = asyncio.create_task(sweeper.run(stop))
            await asyncio.sleep(args.seconds + 10)
            stop.set()
            await task
            twilio.close()
            await redis.aclose()
            await engine.dispose()
    finally:
        sim.terminate()
        sim.wait()
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    times = sorted(e["t"] for e in events if e["event"] == "create")
    start = times[0] + 2.0  # past the first pass
    window = [t for t in times if start <= t < start + args.seconds]
    rate = len(window) / args.seconds
    gaps = [b - a for a, b in itertools.pairwise(times)]
    over = sum(
        1 for i, t in enumerate(times) if sum(1 for u in times[i : i + 10] if u < t + 1) > args.cps
    )
    buckets = [0] * (int(times[-1] - times[0]) // 10 + 1)
    for t in times:
        buckets[int(t - times[0]) // 10] += 1
    print(f"pacing: target {args.cps}/s over {args.seconds} s against the simulator process")
    print(f"  dials per 10 s: {buckets}")
    print(
        f"  measured {rate:.3f}/s ({(rate / args.cps - 1) * 100:+.2f}%), "
        f"gaps p50 {statistics.median(gaps):.3f} s, min {min(gaps):.3f} s, "
        f"1-s windows over the rate: {over}"
    )


async def seed_dialing(url: str, calls: int) -> list[int]:
    """``calls`` campaign members being dialed: each with its attempt (``dialing``, no SID
    yet) and queued call committed, as the dialer leaves them before ``calls.create``
    returns; the attempt ids."""
    settings = bench_settings(url)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    cid = await seed(sessions, calls)
    async with sessions() as session:
        members = (await session.execute(select(CampaignLead.id, CampaignLead.lead_id))).all()
        now = datetime.now(UTC)
        call_rows = [
            {
                "lead_id": lead,
                "campaign_id": cid,
                "direction": "outbound",
                "status": "queued",
                "status_events": [],
                "created_at": now,
                "updated_at": now,
            }
            for _, lead in members
        ]
        await session.execute(insert(Call), call_rows)
        call_ids = (await session.scalars(select(Call.id).order_by(Call.id))).all()
        await session.execute(
            insert(CampaignAttempt),
            [
                {
                    "campaign_id": cid,
                    "member_id": m,
                    "lead_id": lead,
                    "attempt_no": 1,
                    "idempotency_key": f"b{m}",
                    "status": "dialing",
                    "call_id": call_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for (m, lead), call_id in zip(members, call_ids, strict=True)
            ],
        )
        await session.execute(text("UPDATE campaign_leads SET state = 'dialing'"))
        attempt_ids = (
            await session.scalars(select(CampaignAttempt.id).order_by(CampaignAttempt.id))
        ).all()
        await session.commit()
    await engine.dispose()
    return list(attempt_ids)


async def callbacks(args: argparse.Namespace) -> None:
    """Signed status callbacks at ``--rate``/s for ``--seconds`` against ``voicebot serve
    --workers N`` (Postgres); latency percentiles from the client (this process, on the same
    machine: its own scheduling delay is included)."""
    from twilio.request_validator import RequestValidator

    calls = int(args.rate * args.seconds / 3) + 1
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with fresh_database() as url:
        attempt_ids = await seed_dialing(url, calls)
        env = dict(os.environ)
        env.update(
            DATABASE_URL=url,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            PUBLIC_BASE_URL=public,
            LOG_LEVEL="WARNING",
            TWILIO_FROM_NUMBER="+97233720000",
            SECRET_KEY=secrets.token_hex(32),
            TWILIO_API_BASE_URL="http://127.0.0.1:9",
        )
        env.pop("REDIS_URL", None)
        workdir = Path(tempfile.mkdtemp(prefix="voicebot-bench-"))
        command = [
            str(Path(sys.executable).parent / "voicebot"),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ]
        if args.profile:
            command = [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--subprocesses",
                "--rate",
                "200",
                "--format",
                "speedscope" if args.profile.endswith(".json") else "flamegraph",
                "-o",
                args.profile,
                "--",
                *command,
            ]
        log_file = open(args.server_log, "wb") if args.server_log else None  # noqa: SIM115, ASYNC230
        server = subprocess.Popen(  # noqa: ASYNC220 - our own CLI, started once
            command,
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=log_file or subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the workers go with it
        )
        try:
            async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=200)) as c:
                for _ in range(200):
                    try:
                        if (await c.get(f"{public}/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # start-up work done
                idle_cpu = tree_cpu_s(server.pid, include_root=not args.profile)
                await asyncio.sleep(IDLE_SAMPLE_S)
                idle_rate = (
                    tree_cpu_s(server.pid, include_root=not args.profile) - idle_cpu
                ) / IDLE_SAMPLE_S
                validator = RequestValidator(AUTH_TOKEN)
                latencies: list[float] = []
                statuses: dict[int, int] = {}
                errors: dict[str, int] = {}
                total = int(args.rate * args.seconds)
                # Signed and encoded before the clock starts: the client's own CPU shares
                # the machine with the server under test.
                plan = callback_plan(attempt_ids, args.rate)[:total]
                requests = [signed_request(validator, public, aid, status) for aid, status in plan]
                by_kind: dict[str, list[float]] = {"progress": [], "final": []}
                by_second: dict[int, list[float]] = {}
                client = RawHttpClient("127.0.0.1", port, max_connections=MAX_CLIENT_CONNECTIONS)

                async def post(raw: bytes, due: float, kind: str) -> None:
                    try:
                        async with asyncio.timeout(CLIENT_TIMEOUT_S):
                            code = await client.post(raw)
                    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                        code = -1  # counted, not hidden
                        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    # From the moment it was due: a late client is counted, not hidden.
                    latencies.append((time.perf_counter() - due) * 1000)
                    by_kind[kind].append(latencies[-1])
                    by_second.setdefault(int(due - began), []).append(latencies[-1])
                    statuses[code] = statuses.get(code, 0) + 1

                tasks = []
                database = url.rsplit("/", 1)[1]
                backends: dict[int, float] = {}
                stop_polling = asyncio.Event()
                poller = asyncio.create_task(poll_backends(database, backends, stop_polling))
                await asyncio.sleep(0)
                backends_before = dict(backend_cpu_s(database))
                sessions_before = await database_sessions(database)
                load_before = os.getloadavg()
                cpu_before = tree_cpu_s(server.pid, include_root=not args.profile)
                client_before = time.process_time()
                began = time.perf_counter()
                for i, raw in enumerate(requests):
                    due = began + i / args.rate
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    kind = "final" if plan[i][1] == "busy" else "progress"
                    tasks.append(asyncio.create_task(post(raw, due, kind)))
                await asyncio.gather(*tasks)
                await client.aclose()
                elapsed = time.perf_counter() - began
                client_cpu = time.process_time() - client_before
                load_after = os.getloadavg()
                cpu_used = tree_cpu_s(server.pid, include_root=not args.profile) - cpu_before
                stop_polling.set()
                await poller
                backend_cpu = sum(
                    cpu - backends_before.get(pid, 0.0) for pid, cpu in backends.items()
                )
                connects = await database_sessions(database) - sessions_before
                # The server's own view of its stalls (one process's, with --workers N).
                exposition = (await c.get(f"{public}/metrics")).text
        finally:
            if args.profile:
                os.killpg(server.pid, signal.SIGINT)  # py-spy writes its profile, then stops
            else:
                # SIGTERM would drain (wait for calls) first; the group: --workers children too
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)
            if log_file is not None:
                log_file.close()
    print(
        f"callbacks: {len(latencies)} signed status callbacks at {args.rate}/s "
        f"({len(latencies) / elapsed:.0f}/s achieved), {args.workers} web process(es), Postgres"
    )
    print(
        f"  latency p50 {percentile(latencies, 50):.1f} ms, "
        f"p90 {percentile(latencies, 90):.1f} ms, "
        f"p95 {percentile(latencies, 95):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
        f"max {max(latencies):.1f} ms; statuses {statuses} (-1: no answer in 10 s)"
    )
    for kind, values in by_kind.items():
        if values:
            print(
                f"  {kind} ({len(values)}): p50 {percentile(values, 50):.1f} ms, "
                f"p90 {percentile(values, 90):.1f}, p99 {percentile(values, 99):.1f}, "
                f"max {max(values):.1f}"
            )
    print(
        f"  server (one process): {stall_summary(exposition)}; "
        f"{connects} Postgres connections opened during the run (all processes)"
    )
    first = sorted(by_second.get(0, []))[-5:]
    print(f"  the first second's slowest: {' '.join(f'{v:.0f}' for v in first)} ms")
    print(
        "  p99 by second of the run: "
        + " ".join(f"{percentile(by_second[k], 99):.0f}" for k in sorted(by_second))
    )
    if errors:
        print(f"  client errors: {errors}")
    n = len(latencies)
    net = max(0.0, cpu_used - idle_rate * elapsed)
    print(
        f"  server CPU {cpu_used:.1f} s: {cpu_used * 1000 / n:.2f} ms per callback; "
        f"less its idle {idle_rate * 1000:.0f} ms/s: {net * 1000 / n:.2f} ms per callback"
    )
    print(
        f"  Postgres backends CPU {backend_cpu * 1000 / n:.2f} ms per callback; "
        f"this client {client_cpu * 1000 / n:.2f} ms per callback"
    )
    print(
        f"  load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f} "
        f"on {os.cpu_count()} CPUs; {cpu_pressure()}"
    )


async def callback_cpu(args: argparse.Namespace) -> None:
    """CPU per status callback by status, through the app's ASGI interface in this process
    (no HTTP server, no client, one callback at a time): the app's own cost, steadier than
    the ``callbacks`` run on a shared machine. Same seed and signed requests."""
    from twilio.request_validator import RequestValidator

    from voicebot.app import create_app

    public = "http://127.0.0.1:9"
    async with fresh_database() as url:
        attempt_ids = await seed_dialing(url, args.calls + CPU_WARMUP_CALLS)
        app = create_app(
            bench_settings(
                url,
                public_base_url=public,
                secret_key=secrets.token_hex(32),
                twilio_api_base_url="http://127.0.0.1:9",
            )
        )
        validator = RequestValidator(AUTH_TOKEN)

        async def send_one(attempt_id: int, status: str) -> None:
            raw = signed_request(validator, public, attempt_id, status)
            head, body = raw.split(b"\r\n\r\n", 1)
            request_line, *lines = head.decode().split("\r\n")
            target = request_line.split(" ")[1]
            path, _, query = target.partition("?")
            headers = [
                (k.strip().lower().encode(), v.strip().encode())
                for k, _, v in (ln.partition(":") for ln in lines)
            ]
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": query.encode(),
                "root_path": "",
                "headers": headers,
                "client": ("127.0.0.1", 40000),
                "server": ("127.0.0.1", 9),
            }
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            answer: dict[str, int] = {}

            async def receive() -> dict[str, Any]:
                if messages:
                    return messages.pop()
                await asyncio.Event().wait()  # the request is whole: wait for cancellation
                raise AssertionError("unreachable")

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    answer["status"] = message["status"]

            await app(scope, receive, send)
            if answer.get("status") != 204:
                raise RuntimeError(f"{status} callback answered {answer.get('status')}")

        async with app.router.lifespan_context(app):
            # The sweeper's and dispatcher's first passes run just after start-up: not ours.
            await asyncio.sleep(START_SETTLE_S)
            cold: dict[str, list[str]] = {}
            for n, attempt_id in enumerate(attempt_ids[:CPU_WARMUP_CALLS]):
                for status in ("initiated", "ringing", "busy"):
                    cpu, wall = time.process_time(), time.perf_counter()
                    await send_one(attempt_id, status)
                    if n < COLD_CALLS_SHOWN:
                        cold.setdefault(status, []).append(
                            f"{(time.process_time() - cpu) * 1000:.1f}"
                            f"/{(time.perf_counter() - wall) * 1000:.1f}"
                        )
            # What the first callbacks after start-up cost (compiling, preparing, connecting):
            # the pool hands out its connections in turn, so these meet each one once.
            print(f"callback-cpu first {COLD_CALLS_SHOWN} calls (ms CPU/wall, in order):")
            for status, costs in cold.items():
                print(f"  {status}: {' '.join(costs)}")
            measured = attempt_ids[CPU_WARMUP_CALLS:]
            load_before = os.getloadavg()
            for status in ("initiated", "ringing", "busy"):
                cpu, wall = time.process_time(), time.perf_counter()
                for attempt_id in measured:
                    await send_one(attempt_id, status)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                print(
                    f"callback-cpu {status}: {cpu * 1000 / len(measured):.2f} ms CPU, "
                    f"{wall * 1000 / len(measured):.2f} ms wall per callback ({len(measured)})"
                )
            print(
                f"  load average (1 min) before {load_before[0]:.1f}, "
                f"after {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )


async def database_sessions(database: str) -> int:
    """Sessions ever opened on ``database`` (``pg_stat_database.sessions``, Postgres 14+;
    counted when they end, and this query's own session included)."""
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute("SELECT pg_stat_clear_snapshot()")
        return int(
            await admin.fetchval(
                "SELECT sessions FROM pg_stat_database WHERE datname = $1", database
            )
            or 0
        )
    finally:
        await admin.close()


def cpu_pressure() -> str:
    """The kernel's CPU pressure (share of time some runnable task waited for a core, last
    10 s and 60 s): what the other sessions take from this run, where Linux reports it."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return "CPU pressure unknown"
    fields = dict(item.split("=", 1) for item in some[1:])
    return (
        f"CPU pressure (some) {fields.get('avg10', '?')} % / {fields.get('avg60', '?')} % "
        "(10 s / 60 s)"
    )


def callback_plan(attempt_ids: Sequence[int], rate: int) -> list[tuple[int, str]]:
    """initiated, ringing, busy for every attempt, in blocks of a third of a second's worth
    of calls, so the three callbacks of one call come ~1/3 s apart (Twilio's come seconds
    apart; back to back they would only queue on the call's row lock)."""
    block = max(1, rate // 9)
    plan: list[tuple[int, str]] = []
    for start in range(0, len(attempt_ids), block):
        chunk = attempt_ids[start : start + block]
        plan += [(aid, status) for status in ("initiated", "ringing", "busy") for aid in chunk]
    return plan


def signed_request(validator: Any, public: str, attempt_id: int, status: str) -> bytes:
    """One status callback as Twilio sends it: HTTP/1.1 bytes, signed, with a fresh
    idempotency token."""
    path = f"/twilio/status?attempt={attempt_id}"
    form = {"CallSid": f"CA{attempt_id:032d}", "CallStatus": status, "AccountSid": ACCOUNT_SID}
    body = urlencode(form).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {public.split('//', 1)[1]}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Twilio-Signature: {validator.compute_signature(public + path, form)}\r\n"
        f"I-Twilio-Idempotency-Token: {secrets.token_hex(16)}\r\n\r\n"
    )
    return head.encode() + body


class RawHttpClient:
    """A minimal HTTP/1.1 keep-alive client (prebuilt requests, status code only): httpx
    spent ~10 ms of CPU per request here, more than the server under test."""

    def __init__(self, host: str, port: int, *, max_connections: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.open: set[asyncio.StreamWriter] = set()

    async def post(self, raw: bytes) -> int:
        """Send ``raw``, read the answer; its status code. A kept-alive connection the
        server closed meanwhile (uvicorn: 5 s idle) is replaced once, as HTTP clients do.
        Raises OSError, ValueError or IncompleteReadError on a broken answer."""
        async with self.slots:
            while self.idle:
                reader, writer = self.idle.pop()
                try:
                    return await self._exchange(reader, writer, raw)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                        raise
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.open.add(writer)
            return await self._exchange(reader, writer, raw)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
    ) -> int:
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            code = int(lines[0].split(" ", 2)[1])
            length = next(
                (int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                 if k.lower() == "content-length"),
                0,
            )  # fmt: skip
            if length:
                await reader.readexactly(length)
        except BaseException:
            self.open.discard(writer)
            writer.close()
            raise
        self.idle.append((reader, writer))
        return code

    async def aclose(self) -> None:
        for writer in self.open:
            writer.close()


def tree_cpu_s(root_pid: int, *, include_root: bool = True) -> float:
    """CPU seconds (user + system) used so far by ``root_pid`` and its descendants (Linux
    /proc): the server's own cost per callback, whatever the machine's load."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    wanted = {root_pid}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in stats.items() if ppid in wanted} - wanted
        grew = bool(more)
        wanted |= more
    if not include_root:
        wanted.discard(root_pid)
    return sum(stats[pid][1] for pid in wanted if pid in stats)


def backend_cpu_s(database: str) -> dict[int, float]:
    """CPU seconds so far of each Postgres backend serving ``database`` (found by its
    process title, ``postgres: … user database host(port) state``)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
            if not title.startswith(b"postgres: ") or f" {database} ".encode() not in title:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


async def poll_backends(database: str, seen: dict[int, float], stop: asyncio.Event) -> None:
    """Keep the last CPU reading of every backend of ``database`` until ``stop`` (a pool's
    overflow connections come and go during a run)."""
    while True:
        seen.update(backend_cpu_s(database))
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BACKEND_POLL_S)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("schedule")
    p.add_argument("--leads", type=int, default=10_000)
    p.add_argument("--claims", type=int, default=10)
    p = sub.add_parser("pacing")
    p.add_argument("--cps", type=float, default=2.0)
    p.add_argument("--seconds", type=int, default=60)
    p = sub.add_parser("callbacks")
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--workers", type=int, default=1, help="web processes (voicebot serve)")
    p.add_argument("--server-log", help="write the server's log (stderr) to this file")
    p.add_argument("--profile", help="py-spy profile of the server: .svg flamegraph or .json")
    p = sub.add_parser("callback-cpu")
    p.add_argument("--calls", type=int, default=300, help="calls, three callbacks each")
    args = parser.parse_args()
    if getattr(args, "profile", None):
        args.profile = str(Path(args.profile).resolve())  # the server runs in a temp dir
    benches = {
        "schedule": schedule,
        "pacing": pacing,
        "callbacks": callbacks,
        "callback-cpu": callback_cpu,
    }
    asyncio.run(benches[args.bench](args))


if __name__ == "__main__":
    main()
