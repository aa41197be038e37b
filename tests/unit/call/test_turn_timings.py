"""TurnTimings: each stage of the latency breakdown is the gap between the right instants."""

from __future__ import annotations

from voicebot.call.recorder import TurnTimings


def test_llm_turn_breakdown_names_every_stage() -> None:
    """An LLM turn reports endpoint, STT, first token, first sentence, TTS, frame and total."""
    timings = TurnTimings(
        started_at=10.700,
        speech_end_at=10.000,
        stt_done_at=10.950,
        llm_first_token_at=11.300,
        brain_done_at=11.420,
        tts_first_byte_at=11.620,
        first_frame_at=11.625,
    )
    assert timings.breakdown_ms() == {
        "endpoint": 700.0,
        "stt": 250.0,
        "llm_first_token": 350.0,
        "brain": 470.0,
        "tts_first_byte": 320.0,
        "first_frame": 5.0,
        "total": 1625.0,
    }


def test_rule_turn_has_no_first_token_stage() -> None:
    """Without a model, TTS is timed from the first sentence and no first-token stage shows."""
    timings = TurnTimings(
        started_at=1.0, stt_done_at=1.25, brain_done_at=1.251, tts_first_byte_at=1.3
    )
    breakdown = timings.breakdown_ms()
    assert "llm_first_token" not in breakdown
    assert breakdown["tts_first_byte"] == 49.0
