"""The OpenAI simulator speaks OpenAI's wire formats (checked at the HTTP level)."""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import openai

from tests.unit.providers.conftest import needs_espeak, speak
from voicebot.testing.provider_sim import ProviderSim, Rule, ScriptedResponder, SimToolCall


async def test_chat_stream_is_sse_chunks_ending_in_done(sim: ProviderSim) -> None:
    """Streamed chat is `data: {chat.completion.chunk}` events then `data: [DONE]`."""
    sim.responder = ScriptedResponder(
        [Rule("פגישה", tool=SimToolCall("book", {"a": "1234567890"}))]
    )
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "פגישה"}]}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sim.base_url}/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "book"
    assert len(calls) > 2 and all(c["index"] == 0 for c in calls)
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"a": "1234567890"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_non_streamed_chat_parses_with_the_openai_client(sim: ProviderSim) -> None:
    """A non-stream completion is a valid ChatCompletion for the real client."""
    client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0)
    completion = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "שלום"}]
    )
    await client.close()
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"


async def test_errors_use_openai_error_shape(sim: ProviderSim) -> None:
    """429 answers carry {"error": {message, type, param, code}} like OpenAI's."""
    sim.config.llm.error_rate = 1.0
    sim.config.llm.error_status = 429
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sim.base_url}/chat/completions", json={})
    assert response.status_code == 429
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded"


async def test_rate_based_faults_hit_about_their_share_of_requests(sim: ProviderSim) -> None:
    """With error_rate 0.1, about a tenth of 400 requests fail; with hang_rate 0.25, about a
    quarter hang (no answer within 50 ms) while the rest answer."""
    sim.config.tts.error_rate = 0.1
    sim.config.llm.hang_rate = 0.25
    async with httpx.AsyncClient() as client:
        errors = 0
        for _ in range(400):
            response = await client.post(
                f"{sim.base_url}/audio/speech", json={"model": "m", "input": "", "voice": "v"}
            )
            errors += response.status_code == 500
        hung = 0
        for _ in range(80):
            try:
                await client.post(f"{sim.base_url}/chat/completions", json={}, timeout=0.05)
            except httpx.TimeoutException:
                hung += 1
    assert 20 <= errors <= 65
    assert 8 <= hung <= 35


async def test_bearer_key_is_checked_when_configured(sim: ProviderSim) -> None:
    """With an API key set, a wrong bearer token is a 401."""
    sim.config.api_key = "secret"
    async with httpx.AsyncClient() as client:
        bad = await client.post(f"{sim.base_url}/chat/completions", json={},
                                headers={"Authorization": "Bearer nope"})  # fmt: skip
    assert bad.status_code == 401


@needs_espeak
async def test_admin_endpoints_register_phrases_and_report_counts(sim: ProviderSim) -> None:
    """POST /_sim/phrases teaches a phrase; /_sim/config changes behaviour; /_sim/stats counts."""
    pcm = await speak("שלום")
    admin = sim.base_url.removesuffix("/v1")
    async with httpx.AsyncClient() as client:
        phrase = {
            "text": "שלום",
            "pcm16_b64": base64.b64encode(pcm).decode(),
            "sample_rate_hz": 22050,
        }
        created = await client.post(f"{admin}/_sim/phrases", json=phrase)
        await client.post(f"{admin}/_sim/config", json={"llm": {"delay_ms": 5}})
        await client.post(f"{sim.base_url}/chat/completions", json={"model": "m", "messages": []})
        stats = (await client.get(f"{admin}/_sim/stats")).json()
    assert created.status_code == 201
    assert sim.config.llm.delay_ms == 5
    assert stats == {"requests": {"llm": 1}, "phrases": 1}


async def test_speech_without_espeak_is_a_voiced_signal(sim: ProviderSim) -> None:
    """With espeak-ng disabled, /audio/speech streams a non-silent tone sized to the text."""
    sim.config.tts_use_espeak = False
    body = {"model": "m", "voice": "alloy", "input": "שלום לכולם", "response_format": "pcm"}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{sim.base_url}/audio/speech", json=body)
    samples = np.frombuffer(response.content, dtype="<i2").astype(np.float64)
    assert samples.size == 24_000 * 600 // 1000
    assert np.sqrt(np.mean(samples**2)) > 1000
