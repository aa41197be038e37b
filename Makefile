# The one command surface: the README and CI run exactly these targets.
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-full demo install system-deps lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# espeak-ng (Hebrew TTS) and sox (test audio): installed with apt when we are root,
# otherwise named with the exact command; the server starts without them and says so.
system-deps:
	@if command -v espeak-ng >/dev/null 2>&1 && command -v sox >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		(apt-get install -y -qq espeak-ng sox >/dev/null 2>&1 || \
		 (apt-get update -qq && apt-get install -y -qq espeak-ng sox >/dev/null)); \
	else echo "espeak-ng/sox missing: run 'sudo apt-get install -y espeak-ng sox'"; fi

run: install system-deps
	$(VENV)/bin/voicebot migrate
	$(VENV)/bin/voicebot serve --host $(HOST) --port $(PORT)

# TEST_WORKERS=N runs the suite on N pytest-xdist workers (each with its own Postgres
# database and redis-server); 0 is one process. The suite mostly waits on real-time calls
# (a quarter of a core busy on average), so three workers on the 2-core machine: 12.5 min
# at load 8 (two workers: 19 min at load 8; one process: 30 min on the quiet machine).
# Tests marked `full` (slow twins of paths covered here) run only in `make test-full`.
TEST_WORKERS ?= 3
test: install system-deps
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal -m "not full"

# The full run (scripts/full_suite.sh): the suite with the contract test at 50 cases per
# operation and mode, then the campaign fault suite at its standard size, both shapes.
test-full: install system-deps
	TEST_WORKERS=$(TEST_WORKERS) scripts/full_suite.sh

# One simulated Hebrew call against an in-process server; writes demo-call.wav.
demo: install system-deps
	$(VENV)/bin/voicebot demo

lint: install
	$(VENV)/bin/ruff check voicebot tests scripts
	$(VENV)/bin/ruff format --check voicebot tests scripts
	$(VENV)/bin/mypy

# The standard benchmark (about 25 minutes): BENCHMARKS.md tables on stdout, raw JSON in
# .cache/bench-results.json. BENCH_ARGS narrows it, e.g. BENCH_ARGS="--points 1,50".
bench: install system-deps
	$(PY) scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache voicebot.db .cache
