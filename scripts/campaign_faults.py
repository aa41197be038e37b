"""Campaign fault suite (#9 item 11): dial a campaign while killing the processes under it.

Production shape (default): Postgres, its own Redis (broker + pacing; a ``redis-server``
of this script's on a free port, no persistence — never the shared one), ``voicebot
serve``, two ``voicebot worker`` processes and the Twilio REST simulator (callbacks,
answers, busy/no-answer/failed, machines, lost and duplicated callbacks). A campaign of
``--leads`` leads runs while a worker, the web process and Redis are each ``kill -9``-ed
``--kills`` times at random moments and restarted. Embedded shape (``--embedded``):
SQLite, the in-process broker, ``voicebot serve`` alone, killed and restarted.

It prints and asserts the issue's six counts, all 0: leads not final, attempts (and
leads) dialed twice, members stuck, calls over the concurrency cap, 1-second windows over
the CPS, dials outside the calling window; and leads never dialed (a lead settled without
a call passes the others). Exit status 1 when one is not.

    python scripts/campaign_faults.py                      # 200 leads, 3 kills each
    python scripts/campaign_faults.py --embedded
    python scripts/campaign_faults.py --leads 30 --kills 1 --cps 4 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "faults-token"  # noqa: S105 - the simulator's own test credential
FROM_NUMBER = "+97233720000"
LEAD_ZONE = ZoneInfo("Asia/Jerusalem")


@dataclass(frozen=True)
class ZonePair:
    """Where the leads live: most on ``zone`` (numbers ``prefix`` + 7 digits), every
    LATE_EVERY-th on ``late_zone`` (``late_prefix`` + 7 digits), a clock behind ``zone``
    whose window opens a minute or two after the start, so a dial ahead of a lead's own
    clock is a dial outside the window the count catches."""

    zone: ZoneInfo
    prefix: str
    late_zone: ZoneInfo
    late_prefix: str


ZONE_PAIRS = (
    ZonePair(LEAD_ZONE, "+97252", ZoneInfo("Europe/Paris"), "+3314"),
    ZonePair(ZoneInfo("America/New_York"), "+1212", ZoneInfo("America/Chicago"), "+1312"),
)
"""Jerusalem and Paris, unless that window would cross midnight on either clock (a
window is one local day): then New York and Chicago, seven hours behind, at mid-afternoon."""
LATE_EVERY = 5
LATE_OPENING_MIN_S = 5
"""The late leads' window opens at the first whole minute at least this far ahead."""
WINDOW_AHEAD = timedelta(hours=2)
"""The window closes this long after the start (or at the end of the local day)…"""
RUN_MARGIN = timedelta(hours=1)
"""…and at least this long after it, however late in the day the suite starts."""
POSTGRES_ADMIN_DSN = os.environ.get(
    "VOICEBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
START_TIMEOUT_S = 180.0
"""A process start is ~5 s of CPU (imports: openai's types alone ~2 s); on a loaded
machine (2 cores, load 12-15) four of them at once get ~0.15 core each."""
POLL_INTERVAL_S = 1.0
RESTART_PAUSE_S = (0.5, 2.0)
FINAL_STATES = ("done", "failed", "skipped")
STATUS_SQL = __import__("sqlalchemy").text("SELECT status FROM campaigns WHERE id = :c")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    """One child process this script starts, kills and restarts."""

    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> None:
        if self.port is None:
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open(self.port):
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.workdir / self.name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not open port {self.port}")
            time.sleep(0.1)

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@dataclass
class Run:
    args: argparse.Namespace
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    database_url: str = ""
    pg_name: str | None = None
    kill_log: list[tuple[float, str]] = field(default_factory=list)

    @property
    def sim_log(self) -> Path:
        return self.workdir / "twilio_sim.jsonl"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def setup(run: Run) -> None:
    args = run.args
    python = sys.executable
    voicebot = [str(Path(python).parent / "voicebot")]
    web_port, sim_port = free_port(), free_port()
    if args.embedded:
        run.database_url = f"sqlite+aiosqlite:///{run.workdir / 'faults.db'}"
    else:
        run.pg_name = f"voicebot_faults_{secrets.token_hex(4)}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{run.pg_name}"'))
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        run.database_url = f"{base}/{run.pg_name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEBOT_", "TWILIO_"))}
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "OPENAI_API_KEY", "API_KEY"):
        env.pop(name, None)
    env.update(
        {
            "DATABASE_URL": run.database_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER,
            "TWILIO_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            "SECRET_KEY": secrets.token_hex(32),
            "TWILIO_CPS": str(args.account_cps),
            "CAMPAIGN_SWEEP_INTERVAL_S": "1",
            "CAMPAIGN_LEASE_S": "4",
            "CAMPAIGN_DIAL_SETTLE_S": "8",
            "CAMPAIGN_RECONCILE_AFTER_S": "4",
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if not args.embedded:
        redis_port = free_port()
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        binary = shutil.which("redis-server") or "redis-server"
        run.procs["redis"] = Proc(
            "redis",
            [
                binary,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            env,
            run.workdir,
            port=redis_port,
        )
    run.env = env
    subprocess.run([*voicebot, "migrate"], env=env, cwd=run.workdir, check=True)
    run.procs["sim"] = Proc(
        "sim",
        [
            python,
            "-m",
            "voicebot.testing.twilio_api_sim",
            "--port",
            str(sim_port),
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            AUTH_TOKEN,
            "--log",
            str(run.sim_log),
            "--mix",
            args.mix,
            "--ring-s",
            "0.5",
            "--talk-s",
            str(args.talk_s),
            "--loss",
            str(args.loss),
            "--duplicates",
            str(args.duplicates),
            "--latency-s",
            "0.1",
            "--seed",
            str(args.seed),
        ],
        env,
        run.workdir,
        port=sim_port,
    )
    run.procs["web"] = Proc(
        "web", [*voicebot, "serve", "--port", str(web_port)], env, run.workdir, port=web_port
    )
    if not args.embedded:
        for i in (1, 2):
            run.procs[f"worker{i}"] = Proc(f"worker{i}", [*voicebot, "worker"], env, run.workdir)
    for proc in run.procs.values():
        proc.start()
    for proc in run.procs.values():
        proc.wait_ready()


@dataclass(frozen=True)
class WindowPlan:
    """The campaign's window fields and the zones of its leads, for one start instant."""

    fields: dict[str, Any]
    pair: ZonePair

    def phone(self, i: int, late_every: int) -> str:
        """Lead ``i``'s number: on the late clock every ``late_every``-th (0: never)."""
        late = late_every and i % late_every == late_every - 1
        prefix = self.pair.late_prefix if late else self.pair.prefix
        return f"{prefix}{5550000 + i:07d}"


def window_plan(now: datetime) -> WindowPlan:
    """A window open now on the main leads' clock, opening on the late leads' clock at the
    next whole minute (at least LATE_OPENING_MIN_S away), and open on both for at least
    RUN_MARGIN (calendar none: the IL calendar's own days are the unit tests'; this suite
    checks the engine never dials a lead outside its own window). The first pair of
    ZONE_PAIRS where that fits in one local day on both clocks, whatever the hour."""
    for pair in ZONE_PAIRS:
        local = now.astimezone(pair.zone)
        late = (now + timedelta(seconds=LATE_OPENING_MIN_S)).astimezone(pair.late_zone)
        start = late.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day_end = datetime.combine(
            local.date() + timedelta(days=1), datetime.min.time(), local.tzinfo
        )
        end = min(local + WINDOW_AHEAD, day_end)
        if start.date() != late.date() or start.time() >= local.time() or end - local < RUN_MARGIN:
            continue
        fields = {
            "calendar": "none",
            "window_days": "sun,mon,tue,wed,thu,fri,sat",
            "window_start": start.strftime("%H:%M"),
            "window_end": "24:00" if end == day_end else end.strftime("%H:%M"),
        }
        return WindowPlan(fields, pair)
    raise RuntimeError(f"no zone pair has a window open at {now:%H:%M} UTC")


async def create_campaign(run: Run) -> tuple[int, dict[str, Any]]:
    args = run.args
    base = run.env["PUBLIC_BASE_URL"]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        plan = window_plan(datetime.now(UTC))
        ids = []
        for i in range(args.leads):
            lead = {"phone": plan.phone(i, args.late_every), "consent_source": "faults"}
            response = await client.post("/api/v1/leads", json=lead)
            response.raise_for_status()
            ids.append(response.json()["id"])
        fields = {
            "name": "faults",
            "max_concurrent_calls": args.max_concurrent,
            "calls_per_second": args.cps,
            "max_attempts": 1,
            **plan.fields,
        }
        response = await client.post("/api/v1/campaigns", json=fields)
        response.raise_for_status()
        cid = int(response.json()["id"])
        (
            await client.post(f"/api/v1/campaigns/{cid}/leads", json={"lead_ids": ids})
        ).raise_for_status()
        (await client.post(f"/api/v1/campaigns/{cid}/start")).raise_for_status()
    return cid, fields


async def campaign_status(run: Run, cid: int) -> str:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(run.database_url)
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(
                text("SELECT status FROM campaigns WHERE id = :c"), {"c": cid}
            )
    finally:
        await engine.dispose()
    return str(value)


def chaos_plan(run: Run, rng: random.Random) -> list[tuple[float, str]]:
    """(seconds after start, process name) for every kill, at random moments."""
    args = run.args
    span = max(10.0, args.leads / args.cps)
    targets = ["web"] if args.embedded else ["web", "redis", "worker"]
    plan = []
    for target in targets:
        for _ in range(args.kills):
            plan.append((rng.uniform(2.0, span * 0.9), target))
    return sorted(plan)


async def chaos(run: Run, plan: list[tuple[float, str]], rng: random.Random, t0: float) -> None:
    for at, target in plan:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
        name = target if target != "worker" else rng.choice(["worker1", "worker2"])
        proc = run.procs[name]
        proc.kill9()
        run.kill_log.append((time.monotonic() - t0, name))
        print(f"  t={time.monotonic() - t0:6.1f}s kill -9 {name}", flush=True)
        await asyncio.sleep(rng.uniform(*RESTART_PAUSE_S))
        proc.start()
        await asyncio.to_thread(proc.wait_ready)


async def drive(run: Run) -> tuple[int, dict[str, Any], float]:
    rng = random.Random(run.args.seed)
    cid, fields = await create_campaign(run)
    t0 = time.monotonic()
    plan = chaos_plan(run, rng)
    chaos_task = asyncio.create_task(chaos(run, plan, rng, t0))
    deadline = t0 + run.args.timeout_s
    try:
        while time.monotonic() < deadline:
            if chaos_task.done() and await campaign_status(run, cid) == "completed":
                break
            if chaos_task.done() and chaos_task.exception() is not None:
                raise chaos_task.exception()  # type: ignore[misc]
            await asyncio.sleep(POLL_INTERVAL_S)
    finally:
        if not chaos_task.done():
            chaos_task.cancel()
    return cid, fields, time.monotonic() - t0


async def measure(run: Run, cid: int, fields: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(run.database_url)
    try:
        async with engine.connect() as conn:
            states = dict(
                (
                    await conn.execute(
                        text(
                            "SELECT state, count(*) FROM campaign_leads WHERE campaign_id = :c "
                            "GROUP BY state"
                        ),
                        {"c": cid},
                    )
                ).all()
            )
            live_attempts = await conn.scalar(
                text(
                    "SELECT count(*) FROM campaign_attempts WHERE campaign_id = :c AND status "
                    "IN ('claimed', 'dialing', 'placed')"
                ),
                {"c": cid},
            )
            status = await conn.scalar(
                text("SELECT status FROM campaigns WHERE id = :c"), {"c": cid}
            )
    finally:
        await engine.dispose()
    events = [json.loads(line) for line in run.sim_log.read_text().splitlines() if line]
    creates = [e for e in events if e["event"] == "create"]
    attempt_ids = Counter(e["url"].split("attempt=")[-1] for e in creates)
    numbers = Counter(e["to"] for e in creates)
    live, over_cap = 0, 0
    for e in sorted(events, key=lambda e: e["t"]):
        if e["event"] == "create":
            live += 1
            over_cap += live > run.args.max_concurrent
        elif e["event"] == "end":
            live -= 1
    times = sorted(e["t"] for e in creates)
    window_s = 1.0 - run.args.cps_jitter_ms / 1000
    over_cps = windows_over_cps(times, run.args.cps, window_s)
    outside = dials_outside_window(creates, fields)
    not_final = sum(n for state, n in states.items() if state not in FINAL_STATES)
    span_s = (times[-1] - times[0]) if len(times) > 1 else 0.0
    return {
        "campaign_status": status,
        "leads": run.args.leads,
        "dials": len(creates),
        "member_states": states,
        "kills": Counter(name.rstrip("12") for _, name in run.kill_log),
        "leads_not_final": not_final,
        "attempts_dialed_twice": sum(1 for n in attempt_ids.values() if n > 1),
        "leads_dialed_twice": sum(1 for n in numbers.values() if n > 1),
        # Every lead has consent and one attempt: a lead settled without a call (skipped,
        # failed by our side) would pass the other counts, so it is counted too.
        "leads_never_dialed": run.args.leads - len(numbers),
        "members_stuck": int(states.get("dialing", 0) + states.get("in_call", 0))
        + int(live_attempts or 0),
        "calls_over_concurrency_cap": over_cap,
        "one_second_windows_over_cps": over_cps,
        "cps_window_s": window_s,
        "dials_outside_window": outside,
        "dial_rate_per_s": round((len(times) - 1) / span_s, 3) if span_s else None,
    }


def windows_over_cps(times: list[float], cps: float, window_s: float = 1.0) -> int:
    """How many dials (sorted receive times, s) open a ``window_s`` span holding more
    than ``cps`` dials (1.0: the strict one-second count)."""
    over, j = 0, 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < t + window_s:
            j += 1
        over += (j - i) > cps
    return over


def dials_outside_window(creates: list[dict[str, Any]], fields: dict[str, Any]) -> int:
    """Creates (the simulator's JSONL log) placed while the window was closed on any clock
    of the callee's own number (the campaign's zone when the number has none)."""
    from voicebot.scheduling import CallingWindow, lead_timezones

    window = CallingWindow.from_fields(
        window_days=fields["window_days"],
        window_start=fields["window_start"],
        window_end=fields["window_end"],
        calendar=fields["calendar"],
    )
    default = fields.get("timezone", LEAD_ZONE.key)
    return sum(
        1
        for e in creates
        if not all(
            window.is_open(datetime.fromtimestamp(e["t"], UTC), zone)
            for zone in lead_timezones(e["to"], None, default)
        )
    )


ZERO_COUNTS = (
    "leads_not_final",
    "attempts_dialed_twice",
    "leads_dialed_twice",
    "leads_never_dialed",
    "members_stuck",
    "calls_over_concurrency_cap",
    "one_second_windows_over_cps",
    "dials_outside_window",
)


def teardown(run: Run) -> None:
    for proc in reversed(list(run.procs.values())):
        proc.stop()
    if run.pg_name is not None:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{run.pg_name}" WITH (FORCE)'))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedded", action="store_true", help="SQLite + in-process broker")
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument(
        "--late-every",
        type=int,
        default=LATE_EVERY,
        help="every Nth lead on the late clock (Paris or Chicago), opening later (0: none)",
    )
    parser.add_argument("--max-concurrent", type=int, default=10)
    parser.add_argument("--cps", type=float, default=2.0)
    parser.add_argument("--account-cps", type=float, default=10.0)
    parser.add_argument(
        "--cps-jitter-ms",
        type=float,
        default=0.0,
        help="count a window over the CPS only when its dials reached the simulator within "
        "1 s minus this (transport jitter between the pacing gate and the simulator's clock; "
        "0: strict)",
    )
    parser.add_argument("--kills", type=int, default=3, help="kill -9 of each process kind")
    parser.add_argument("--mix", default="human=4,busy=1,no-answer=1,failed=1,machine=1")
    parser.add_argument("--talk-s", type=float, default=2.0)
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--duplicates", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="voicebot-faults-"))
    run = Run(args=args, workdir=workdir)
    shape = "embedded (SQLite, in-process broker)" if args.embedded else "Postgres + Redis"
    print(
        f"campaign faults: {shape}, {args.leads} leads, cap {args.max_concurrent}, "
        f"{args.cps}/s, {args.kills} kill(s) each; logs in {workdir}",
        flush=True,
    )
    try:
        setup(run)
        cid, fields, elapsed = asyncio.run(drive(run))
        for proc in run.procs.values():  # let in-flight callbacks land before counting
            if proc.name.startswith("worker"):
                proc.stop()
        result = asyncio.run(measure(run, cid, fields))
        result["elapsed_s"] = round(elapsed, 1)
    finally:
        teardown(run)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = result["campaign_status"] == "completed" and all(result[k] == 0 for k in ZERO_COUNTS)
    result["ok"] = ok
    if args.json:
        print(json.dumps(result, default=dict))
    else:
        for key, value in result.items():
            print(f"  {key:30} {value}")
        print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
