"""Simulate N concurrent Twilio calls against a running voicebot server and report.

    .venv/bin/python scripts/loadtest.py --url http://127.0.0.1:8000 --auth-token TOKEN \
        --calls 50 --ramp-s 10 --turns 3 --barge-in-prob 0.3 --json

Same as ``voicebot loadtest``; see :mod:`voicebot.loadtest.cli` for every flag.
"""

from __future__ import annotations

import sys

from voicebot.loadtest.cli import main

if __name__ == "__main__":
    sys.exit(main())
