"""μ-law WAV: a header sox and other readers accept, the samples untouched after it."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from voicebot.audio.ulaw_wav import ulaw_to_wav


def test_header_fields_and_samples() -> None:
    """RIFF size, fmt tag 7 at 8 kHz mono 8-bit, fact count and data are all consistent."""
    samples = bytes(range(256)) * 3 + b"\x7f"  # odd length gets a pad byte
    wav = ulaw_to_wav(samples)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert struct.unpack_from("<I", wav, 4)[0] == len(wav) - 8
    assert len(wav) % 2 == 0
    assert wav[12:16] == b"fmt " and struct.unpack_from("<I", wav, 16)[0] == 18
    assert struct.unpack_from("<HHIIHHH", wav, 20) == (7, 1, 8000, 8000, 1, 8, 0)
    assert wav[38:42] == b"fact" and struct.unpack_from("<I", wav, 46)[0] == len(samples)
    assert wav[50:54] == b"data" and struct.unpack_from("<I", wav, 54)[0] == len(samples)
    assert wav[58 : 58 + len(samples)] == samples


@pytest.mark.skipif(shutil.which("soxi") is None, reason="sox is not installed")
def test_sox_reads_it_as_ulaw(tmp_path: Path) -> None:
    """An independent reader (sox) sees 8 kHz mono μ-law of the right length."""
    path = tmp_path / "a.wav"
    path.write_bytes(ulaw_to_wav(b"\xff" * 8000))
    soxi = shutil.which("soxi")
    assert soxi is not None
    info = subprocess.run(  # noqa: S603 - fixed arguments, our own temp file
        [soxi, str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "Sample Rate    : 8000" in info
    assert "Channels       : 1" in info
    assert "u-law" in info.lower()
    assert "00:00:01.00" in info
