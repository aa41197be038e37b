"""How fast the operations console answers with a production-sized database.

Seeds a fresh Postgres database (migrated to head) with 10,000 leads, 50,000 calls
spread over the last 60 days (three turns each for the newest 5,000, with latency
breakdowns), 20 campaigns holding every lead, and 2,000 meetings; then serves the app
in-process and requests every console page through the ASGI interface, signed in with
the API key, ``--requests`` times each after a warm-up, one at a time. Prints p50 / p95
/ max per page in milliseconds (the target is p95 <= 150 ms), the CPU this process spent
per request (the app's own work, apart from Postgres and from waiting for a core on a
loaded machine) and the load averages (1/5/15 min) before and after; exits 1 when a page
misses the target. ``--busy-hour`` moves the 15,000 turns into the last hour (the
overview's latency percentiles then cover 5,000 agent turns: a busy call centre's hour).

    .venv/bin/python scripts/bench_console.py                 # Postgres on 127.0.0.1:5432
    .venv/bin/python scripts/bench_console.py --requests 100 --keep
    .venv/bin/python scripts/bench_console.py --requests 40 --busy-hour
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from voicebot.app import create_app
from voicebot.cli import migrate
from voicebot.config import load_settings

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
LEADS = 10_000
CALLS = 50_000
CAMPAIGNS = 20
MEETINGS = 2_000
CALLS_WITH_TURNS = 5_000
TARGET_P95_MS = 150.0
WARMUP_REQUESTS = 5
API_KEY = "bench-console-key-" + "k" * 24
OUTCOMES = ["meeting_booked", "not_interested", "no_answer", "voicemail", "callback_scheduled",
            "completed", "failed", None]  # fmt: skip
NAMES = ["דנה כהן", "יוסי לוי", "רותי כץ", "משה פרץ", "נועה ברק", "איתי שמש", "מיכל דהן"]


async def seed(dsn: str) -> dict[str, int]:
    """Bulk rows with COPY; returns ids the page list needs."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        leads = [
            (i, f"+97252{5000000 + i:07d}", f"{rng.choice(NAMES)} {i}", "new", [], {}, now, now, 0)
            for i in range(1, LEADS + 1)
        ]
        await conn.copy_records_to_table(
            "leads",
            records=[(*r[:4], "[]", "{}", *r[6:]) for r in leads],
            columns=["id", "phone", "name", "status", "tags", "custom_fields", "created_at",
                     "updated_at", "attempts"],
        )  # fmt: skip
        campaigns = [
            (i, f"קמפיין {i}", rng.choice(["running", "paused", "completed", "draft"]), "{}",
             5, 1.0, 3, 30, 240, "09:00", "19:00", "sun,mon,tue,wed,thu", "Asia/Jerusalem",
             "IL", "[]", True, "leave_message", True, now, now)
            for i in range(1, CAMPAIGNS + 1)
        ]  # fmt: skip
        await conn.copy_records_to_table(
            "campaigns",
            records=campaigns,
            columns=["id", "name", "status", "agent_script", "max_concurrent_calls",
                     "calls_per_second", "max_attempts", "retry_base_min", "retry_max_min",
                     "window_start", "window_end", "window_days", "timezone", "calendar",
                     "blocked_dates", "consent_required", "voicemail_action", "voicemail_retry",
                     "created_at", "updated_at"],
        )  # fmt: skip
        members = [
            (lead, 1 + lead % CAMPAIGNS, rng.choice(["pending", "done", "done", "failed"]),
             rng.choice(OUTCOMES), now, now, 1)
            for lead in range(1, LEADS + 1)
        ]  # fmt: skip
        await conn.copy_records_to_table(
            "campaign_leads",
            records=members,
            columns=["lead_id", "campaign_id", "state", "last_outcome", "created_at",
                     "updated_at", "attempts"],
        )  # fmt: skip
        calls = []
        for i in range(1, CALLS + 1):
            created = now - timedelta(seconds=(CALLS - i) * 60 * 60 * 24 * 60 / CALLS)
            live = i > CALLS - 3
            calls.append(
                (i, f"CA{uuid.uuid4().hex}", 1 + i % LEADS, 1 + i % CAMPAIGNS, "outbound",
                 "in-progress" if live else "completed", "+97233720000",
                 f"+97252{5000000 + 1 + i % LEADS:07d}", created, created,
                 None if live else created + timedelta(seconds=90), 90,
                 None if live else rng.choice(OUTCOMES), "[]", created, created)
            )  # fmt: skip
        await conn.copy_records_to_table(
            "calls",
            records=calls,
            columns=["id", "call_sid", "lead_id", "campaign_id", "direction", "status",
                     "from_number", "to_number", "started_at", "answered_at", "ended_at",
                     "duration_s", "outcome", "status_events", "created_at", "updated_at"],
        )  # fmt: skip
        turns = []
        latency = (
            '{"endpoint": 700, "stt": 200, "llm_first_token": 400, "tts_first_byte": 150, '
            '"first_frame": 20, "total": 1470}'
        )
        for call_id in range(CALLS - CALLS_WITH_TURNS + 1, CALLS + 1):
            created = calls[call_id - 1][8]
            turns += [
                (call_id, 1, "assistant", "היי, כאן נועה", False, '{"total": 5}', created),
                (call_id, 2, "user", "כן, אפשר לדבר", False, "{}", created),
                (call_id, 3, "assistant", "מעולה, בקצרה", rng.random() < 0.2, latency, created),
            ]
        await conn.copy_records_to_table(
            "call_turns",
            records=turns,
            columns=["call_id", "seq", "role", "text", "interrupted", "latency", "created_at"],
        )
        meetings = []
        for i in range(1, MEETINGS + 1):
            start = (now + timedelta(hours=i * 3 - MEETINGS)).replace(minute=0, second=0)
            meetings.append(
                (1 + i % LEADS, CALLS - i, start, start + timedelta(minutes=30), 30,
                 "scheduled", now, now)
            )  # fmt: skip
        await conn.copy_records_to_table(
            "meetings",
            records=meetings,
            columns=["lead_id", "call_id", "start_at", "end_at", "duration_min", "status",
                     "created_at", "updated_at"],
        )  # fmt: skip
        for table in ("leads", "campaigns", "calls"):
            await conn.execute(  # fixed table names, not input
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return {"call": CALLS - 10, "lead": 17, "campaign": 3}


def pages(ids: dict[str, int]) -> dict[str, str]:
    today = datetime.now(UTC).date().isoformat()
    return {
        "overview": "/ui/",
        "live (poll)": "/ui/live",
        "calls": "/ui/calls",
        "calls ?outcome&date": f"/ui/calls?outcome=meeting_booked&date={today}",
        "calls ?campaign": f"/ui/calls?campaign={ids['campaign']}",
        "calls ?lead": f"/ui/calls?lead={ids['lead']}",
        "call": f"/ui/calls/{ids['call']}",
        "campaigns": "/ui/campaigns",
        "campaigns progress (poll)": "/ui/campaigns/progress",
        "campaign": f"/ui/campaigns/{ids['campaign']}",
        "campaign progress (poll)": f"/ui/campaigns/{ids['campaign']}/progress",
        "leads": "/ui/leads",
        "leads ?q=name": "/ui/leads?q=" + "דנה",
        "leads ?q=phone": "/ui/leads?q=0525001234",
        "leads ?status": "/ui/leads?status=new&offset=5000",
        "lead": f"/ui/leads/{ids['lead']}",
        "meetings week": "/ui/meetings",
    }


async def measure(url: str, requests: int) -> list[tuple[str, list[float], list[float]]]:
    settings = load_settings(
        _env_file=None, database_url=url, api_key=API_KEY, log_level="WARNING", redis_url=None
    )
    app = create_app(settings)
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            form = await http.get("/ui/sign-in")
            match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            if match is None:
                raise SystemExit("the sign-in page has no CSRF token")
            signed = await http.post(
                "/ui/sign-in", data={"api_key": API_KEY, "csrf_token": match.group(1)}
            )
            if signed.status_code != 303:
                raise SystemExit(f"sign-in failed: HTTP {signed.status_code}")
            for name, path in pages(SEED_IDS).items():
                times, cpu = [], []
                for index in range(WARMUP_REQUESTS + requests):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    response = await http.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    cpu_ms = (time.process_time() - cpu_started) * 1000
                    if response.status_code != 200:
                        raise SystemExit(f"{path}: HTTP {response.status_code}")
                    if index >= WARMUP_REQUESTS:
                        times.append(elapsed)
                        cpu.append(cpu_ms)
                results.append((name, times, cpu))
    return results


SEED_IDS: dict[str, int] = {}


def _loads(loads: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in loads)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-dsn", default=ADMIN_DSN)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    parser.add_argument(
        "--busy-hour", action="store_true", help="every seeded turn stored in the last hour"
    )
    args = parser.parse_args()
    name = f"voicebot_bench_console_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = args.admin_dsn.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://")
    try:
        await asyncio.to_thread(migrate, load_settings(_env_file=None, database_url=url))
        started = time.perf_counter()
        SEED_IDS.update(await seed(f"{base}/{name}"))
        if args.busy_hour:
            conn = await asyncpg.connect(f"{base}/{name}")
            try:
                await conn.execute(
                    "UPDATE call_turns SET created_at = now() - random() * interval '55 minutes'"
                )
                await conn.execute("ANALYZE call_turns")
            finally:
                await conn.close()
        print(
            f"seeded {LEADS} leads, {CALLS} calls ({CALLS_WITH_TURNS * 3} turns), "
            f"{CAMPAIGNS} campaigns, {MEETINGS} meetings in {time.perf_counter() - started:.1f} s"
        )
        load_before = os.getloadavg()
        results = await measure(url, args.requests)
    finally:
        if not args.keep:
            admin = await asyncpg.connect(args.admin_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    load_after = os.getloadavg()
    print(
        f"\n{args.requests} requests per page on {os.cpu_count()} CPUs; load average "
        f"(1/5/15 min) {_loads(load_before)} before, {_loads(load_after)} after"
    )
    print("| page | p50 ms | p95 ms | max ms | app CPU p50 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    worst = 0.0
    for page_name, times, cpu in results:
        p95 = percentile(times, 95)
        worst = max(worst, p95)
        print(
            f"| {page_name} | {statistics.median(times):.1f} | {p95:.1f} | {max(times):.1f} "
            f"| {statistics.median(cpu):.1f} |"
        )
    print(f"\nworst p95 {worst:.1f} ms (target <= {TARGET_P95_MS:.0f} ms)")
    return 0 if worst <= TARGET_P95_MS else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
