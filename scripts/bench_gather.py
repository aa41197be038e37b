"""Time the <Gather> webhooks: how long Twilio waits for each TwiML answer of a booking call.

Runs the app in-process (SQLite in a temp dir, espeak-ng TTS, rule brain, no STT, so the
gather mode) and plays Twilio with signed webhooks: the voice webhook, then five spoken
turns that book a meeting. Each answer's time includes synthesizing the agent's sentences
into the phrase cache (so Twilio's GET of the audio is a memory hit). The same call is run
``--calls`` times; the first meets a cold phrase cache, the later ones a warm one.

    .venv/bin/python scripts/bench_gather.py --calls 5
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from twilio.request_validator import RequestValidator

from voicebot.app import create_app
from voicebot.cli import migrate
from voicebot.config import load_settings

AUTH_TOKEN = secrets.token_hex(16)  # signs this run's webhooks only
HOURS = ["בעשר", "באחת עשרה", "בשתיים", "בשלוש", "בארבע"]
"""A different hour per call, so each booking finds its slot free."""


async def one_call(
    http: httpx.AsyncClient, public: str, validator: RequestValidator, index: int
) -> list[float]:
    sid = "CA" + secrets.token_hex(16)
    phone = f"+97254456{index:04d}"
    lead = await http.post("/api/v1/leads", json={"phone": phone, "name": "דנה"})
    lead.raise_for_status()
    lines = [
        "כן, אפשר לדבר",
        "כן מעניין אותי",
        "יש לנו בערך עשרים עובדים",
        f"מחר {HOURS[index % len(HOURS)]}",
        "כן מתאים",
    ]

    async def post(path: str, form: dict[str, str]) -> tuple[str, float]:
        headers = {"X-Twilio-Signature": validator.compute_signature(public + path, form)}
        started = time.perf_counter()
        response = await http.post(path, data=form, headers=headers)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
        return response.text, elapsed_ms

    form = {"CallSid": sid, "From": phone, "To": "+97233769999", "Direction": "inbound"}
    twiml, first_ms = await post("/twilio/voice", form)
    times = [first_ms]
    for line in lines:
        gather = ET.fromstring(twiml).find("Gather")  # noqa: S314 - our own server's TwiML
        if gather is None:
            break  # booked without the confirmation turn
        action = urlsplit(gather.attrib["action"])
        twiml, ms = await post(
            f"{action.path}?{action.query}", {"CallSid": sid, "SpeechResult": line}
        )
        times.append(ms)
    if "<Hangup" not in twiml:
        raise RuntimeError(f"the booking did not end the call: {twiml[:200]}")
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp())
    settings = load_settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        twilio_auth_token=AUTH_TOKEN,
        tts_cache_dir=str(workdir / "tts"),
        log_level="WARNING",
        log_format="json",
    )
    migrate(settings)
    app = create_app(settings)
    validator = RequestValidator(AUTH_TOKEN)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            runs = [
                await one_call(http, settings.public_base_url, validator, index)
                for index in range(args.calls)
            ]
            meetings = (await http.get("/api/v1/meetings")).json()["items"]
    if len(meetings) != args.calls:
        raise RuntimeError(f"{args.calls} calls booked {len(meetings)} meetings")
    cold, warm = runs[0], [t for run in runs[1:] for t in run]
    print(f"cold phrase cache, per webhook (ms): {[round(t) for t in cold]}")
    if warm:
        print(
            f"warm phrase cache, {len(warm)} webhooks: median {statistics.median(warm):.1f} ms, "
            f"max {max(warm):.1f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
