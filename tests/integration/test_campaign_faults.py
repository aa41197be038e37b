"""A small run of the campaign fault suite (scripts/campaign_faults.py) in the test suite:
real processes killed with SIGKILL mid-campaign, all six counts must stay 0."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_unavailable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "campaign_faults.py"
# --late-every 0: the Paris leads whose window opens after the start add up to a minute of
# waiting, past the CI budget; the full suite runs them. Each dial is still checked
# against its own lead's window (tests/unit/test_campaign_faults_window.py).
SMALL_RUN = [
    *("--leads", "24", "--kills", "1", "--cps", "4", "--max-concurrent", "5"),
    *("--late-every", "0", "--json"),
    # The dials are timed where the simulator receives them; beside three test workers the
    # hop from our pacing gate (which logs each send on its own clock, in the sending
    # thread) to the simulator's log took over 100 ms, so the 5th dial of a full-rate burst
    # could land in the 1st one's second (brk9: 2 of 3 runs at load 4-10). The CI run
    # allows 150 ms of that jitter; the full script (BENCHMARKS.md) counts strictly. Two
    # workers each pacing alone (8/s) would still put 5 dials in 0.5 s.
    *("--cps-jitter-ms", "150"),
    # The script's own deadline: past it, it still prints its counts (leads_not_final > 0).
    *("--timeout-s", "420"),
]
# A hang guard, not a performance target (scripts/campaign_faults.py is the benchmark):
# this run is ~25 s of CPU across its processes (five starts of ~5 s each, restarts after
# the kills), which a machine at load 12-15 on 2 cores stretches to minutes of wall time.
RUN_TIMEOUT_S = 540
ZERO = (
    "leads_not_final",
    "attempts_dialed_twice",
    "leads_dialed_twice",
    "leads_never_dialed",
    "members_stuck",
    "calls_over_concurrency_cap",
    "one_second_windows_over_cps",
    "dials_outside_window",
)


def _run(*extra: str) -> dict[str, object]:
    # Its own process group: on the hang guard the script's children (sim, serve, workers,
    # redis-server) are killed with it, not left running on a shared machine (a SIGKILLed
    # script never reaches its own cleanup).
    proc = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, str(SCRIPT), *SMALL_RUN, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, stdout[-2000:] + stderr[-2000:]
    result: dict[str, object] = json.loads(lines[-1])
    return result


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_worker_web_and_redis_killed_mid_campaign(postgres_url: str) -> None:
    """Postgres + own Redis + serve + two workers, each killed -9 once: every lead final,
    nothing dialed twice, no cap or CPS or window breached."""
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server binary", FileNotFoundError("redis-server"))
    result = _run()
    assert result["campaign_status"] == "completed", result
    assert {k: result[k] for k in ZERO} == dict.fromkeys(ZERO, 0), result
    assert result["dials"] == 24


# The embedded shape runs in the full suite (here and in scripts/full_suite.sh at its
# standard size); make test keeps the worker shape above.
@pytest.mark.slow
@pytest.mark.full
@pytest.mark.timeout(600)
def test_embedded_serve_killed_mid_campaign() -> None:
    """SQLite + in-process broker, serve killed -9 and restarted: the same zeros (every
    lead dialed, once)."""
    result = _run("--embedded")
    assert result["campaign_status"] == "completed", result
    assert {k: result[k] for k in ZERO} == dict.fromkeys(ZERO, 0), result
