"""The load generator: many simulated Twilio calls against a running voicebot server.

``runner`` drives the calls (one shared 20 ms ticker), ``speech`` prepares the
caller's Hebrew audio once, ``server_stats`` reads the server's CPU and memory,
``report`` turns samples into the figures of ``BENCHMARKS.md``, ``plot`` draws
them (matplotlib, optional) and ``cli`` is ``voicebot loadtest`` /
``scripts/loadtest.py``.
"""
