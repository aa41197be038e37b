"""`voicebot loadtest` flags: validation before any call is placed."""

from __future__ import annotations

import pytest

from voicebot.cli import main as voicebot_main
from voicebot.loadtest.cli import build_parser, config_from_args
from voicebot.loadtest.speech import DEFAULT_PHRASES


def test_flags_become_a_config_with_delays() -> None:
    """Every flag lands in the config; the simulator delays add up for the overhead."""
    args = build_parser().parse_args(
        ["--url", "http://h:1", "--auth-token", "t", "--calls", "7", "--ramp-s", "2",
         "--turns", "4", "--barge-in-prob", "0.5", "--noise-snr-db", "15", "--duration-s", "30",
         "--stt-delay-ms", "250", "--llm-ttft-ms", "350", "--tts-ttfb-ms", "200"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.url, config.auth_token, config.calls, config.turns) == ("http://h:1", "t", 7, 4)
    assert (config.ramp_s, config.duration_s, config.barge_in_prob) == (2.0, 30.0, 0.5)
    assert config.noise_snr_db == 15.0 and config.phrases == DEFAULT_PHRASES
    assert config.delays.total_ms == 700 + 250 + 350 + 200


@pytest.mark.parametrize(
    "flags",
    [
        ["--auth-token", "t", "--barge-in-prob", "1.5"],
        ["--auth-token", "t", "--calls", "0"],
        ["--auth-token", ""],
    ],
)
def test_bad_flags_exit_2_without_calling(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad probability, no calls or no auth token exit with status 2 and say why."""
    assert voicebot_main(["loadtest", *flags]) == 2
    assert "loadtest:" in capsys.readouterr().err
