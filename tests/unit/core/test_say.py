"""``voicebot say``: the spoken form the TTS receives, and the audio a call would play."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from voicebot.audio.codec import SAMPLE_RATE_HZ
from voicebot.cli import main

EXAMPLE = "המחיר הוא 49.90 ₪ לחודש, או 56$ בדולרים. יש לנו 5 אנשים בצוות ונחזור אליך תוך 2 שעות."
EXAMPLE_SPOKEN = (
    "המחיר הוא ארבעים ותשעה שקלים ותשעים אגורות לחודש, או חמישים ושישה דולרים בדולרים. "
    "יש לנו חמישה אנשים בצוות ונחזור אליך תוך שעתיים."
)


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "TTS_BASE_URL", "TTS_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_say_prints_spoken_form(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's example sentence is printed exactly as the TTS will receive it."""
    assert main(["say", EXAMPLE]) == 0
    assert capsys.readouterr().out.strip() == EXAMPLE_SPOKEN


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_say_writes_call_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--wav writes the espeak-ng audio at the call's 8 kHz rate, about as long as the text."""
    out = tmp_path / "line.wav"
    assert main(["say", "יש לנו 5 אנשים בצוות", "--wav", str(out)]) == 0
    assert "חמישה אנשים" in capsys.readouterr().out
    with wave.open(str(out), "rb") as wav:
        assert wav.getframerate() == SAMPLE_RATE_HZ
        assert wav.getsampwidth() == 2
        seconds = wav.getnframes() / SAMPLE_RATE_HZ
    assert 0.8 < seconds < 6.0


def test_say_unwritable_wav_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that cannot be written gives one clear line and exit code 2, no traceback."""
    target = tmp_path / "missing-dir" / "x.wav"
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    assert main(["say", "שלום", "--wav", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voicebot say:") and "Traceback" not in err
