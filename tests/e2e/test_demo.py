"""``voicebot demo`` in-process: a temp SQLite database, a temp WAV, the printed transcript."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from sqlalchemy import select

from tests.conftest import make_settings
from voicebot.db.engine import create_engine, create_sessionmaker
from voicebot.db.models import Call, Lead, Meeting
from voicebot.demo import DEMO_LEAD_PHONE, STT_NOTICE, run_demo
from voicebot.demo_caller import caller_answer

AUDIO_CACHE = Path(".cache/hebrew_audio")
WINDOW_MS = 100
SPEECH_RMS = 300.0  # of 32767: well above μ-law silence, well below espeak-ng speech


def _loud_windows(wav_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-100 ms "speech" flags of the left (caller) and right (agent) channels."""
    with wave.open(str(wav_path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    window = 8000 * WINDOW_MS // 1000
    count = samples.shape[0] // window
    frames = samples[: count * window].astype(np.float64).reshape(count, window, 2)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return rms[:, 0] > SPEECH_RMS, rms[:, 1] > SPEECH_RMS


async def test_demo_books_a_meeting_and_records_both_sides(tmp_path: Path) -> None:
    """The demo call stores a meeting for the demo lead, prints both speakers with
    latencies, and saves a stereo WAV with the caller and the agent taking turns."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    settings = make_settings(database_url=url, tts_cache_dir=str(tmp_path / "tts"))
    wav_path = tmp_path / "demo-call.wav"
    printed: list[str] = []

    result = await run_demo(
        settings, wav_path=wav_path, audio_cache_dir=AUDIO_CACHE, out=printed.append
    )

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            stmt = (
                select(Meeting, Lead)
                .join(Call, Call.id == Meeting.call_id)
                .join(Lead, Lead.id == Meeting.lead_id)
                .where(Call.call_sid == result.call_sid)
            )
            rows = (await session.execute(stmt)).all()
    finally:
        await engine.dispose()
    assert len(rows) == 1
    meeting, lead = rows[0]
    assert lead.phone == DEMO_LEAD_PHONE
    assert result.meeting is not None and result.meeting.meeting_id == meeting.id

    assert any(STT_NOTICE in line for line in printed)
    agent = [line for line in printed if line.startswith("סוכן")]
    caller = [line for line in printed if line.startswith("לקוח: ")]
    assert len(caller) >= 4 and len(agent) >= 5
    assert "קבענו" in agent[-1]
    assert all(" ms): " in line for line in agent[:2])
    assert any(line.startswith("meeting stored: #") for line in printed)
    assert result.duration_s < 60

    caller_loud, agent_loud = _loud_windows(wav_path)
    assert caller_loud.sum() * WINDOW_MS >= 4000  # four answers, each over a second long
    assert agent_loud.sum() * WINDOW_MS >= 15_000  # the agent's replies
    both = np.logical_and(caller_loud, agent_loud).sum()
    assert both <= 0.05 * caller_loud.sum()  # time-aligned: they take turns, not overlap


def test_caller_answers_by_what_the_agent_asked() -> None:
    """The scripted caller picks its answer from the agent's question, defaulting to yes."""
    assert caller_answer("היי דנה, כאן נועה. זה זמן טוב לדבר דקה?") == "כן, אפשר לדבר עכשיו"
    assert caller_answer("יש מקום מחר בתשע, או מחר באחת עשרה. מה מתאים יותר?") == "הראשון מתאים לי"
    assert caller_answer("כמה אנשים עובדים אצלכם בעסק?") == "אנחנו חמישה אנשים"
    assert caller_answer("רק לוודא: מחר בתשע, נכון?") == "כן, נכון"
    assert caller_answer("הלו? שומעים אותי?") == "כן, נכון"
