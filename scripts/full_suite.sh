#!/usr/bin/env bash
# The full run (`make test-full`), for a release or a nightly job rather than every push:
#   1. the whole suite, with the contract test at 50 generated cases per operation and mode
#      (VOICEBOT_CONTRACT_EXAMPLES, 3,413 requests per database; `make test` runs 4), and
#      the tests marked `full` that `make test` deselects (slow twins of covered paths);
#   2. the campaign fault suite at its standard size, both shapes (200 leads, every process
#      kind killed -9 three times; the suite's own test runs 24 leads and one kill).
# Needs what `make test` needs (Postgres, Redis, redis-server, espeak-ng, sox, chromium).
# TEST_WORKERS=N as for `make test`; arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export VOICEBOT_CONTRACT_EXAMPLES=${VOICEBOT_CONTRACT_EXAMPLES:-50}
"$VENV/bin/pytest" -n "${TEST_WORKERS:-3}" --dist worksteal "$@"
"$VENV/bin/python" scripts/campaign_faults.py
"$VENV/bin/python" scripts/campaign_faults.py --embedded
