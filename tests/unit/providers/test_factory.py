"""build_providers: OpenAI stages when configured, espeak-ng and rules otherwise."""

from __future__ import annotations

from tests.conftest import make_settings
from voicebot.providers.espeak_tts import EspeakTextToSpeech
from voicebot.providers.factory import build_phrase_cache, build_providers
from voicebot.providers.openai_llm import OpenAILanguageModel
from voicebot.providers.openai_stt import OpenAISpeechToText
from voicebot.providers.openai_tts import OpenAITextToSpeech


async def test_nothing_configured_means_espeak_and_no_ai() -> None:
    """Without keys or URLs, STT and LLM are off and speech comes from espeak-ng."""
    providers = build_providers(make_settings())
    assert providers.stt is None and providers.llm is None and providers.recognizer is None
    assert isinstance(providers.tts, EspeakTextToSpeech)
    assert providers.tts_fallback is None
    assert providers.describe()["llm"] == "off"
    await providers.aclose()


async def test_configured_stages_use_openai_with_espeak_fallback() -> None:
    """A shared base URL turns every stage to OpenAI; espeak-ng becomes the TTS fallback."""
    settings = make_settings(openai_base_url="http://127.0.0.1:9/v1", tts_voice="nova")
    providers = build_providers(settings)
    assert isinstance(providers.stt, OpenAISpeechToText)
    assert isinstance(providers.llm, OpenAILanguageModel)
    assert isinstance(providers.tts, OpenAITextToSpeech)
    assert providers.tts.voice_id.endswith(":nova")
    assert providers.recognizer is not None
    if EspeakTextToSpeech.available():
        assert isinstance(providers.tts_fallback, EspeakTextToSpeech)
    await providers.aclose()


async def test_only_stt_self_hosted() -> None:
    """An STT base URL alone enables STT and leaves the LLM off."""
    providers = build_providers(make_settings(stt_base_url="http://127.0.0.1:9/v1"))
    assert isinstance(providers.stt, OpenAISpeechToText) and providers.llm is None
    await providers.aclose()


def test_phrase_cache_persists_under_the_configured_directory(tmp_path: object) -> None:
    """The phrase cache is built on tts_cache_dir."""
    cache = build_phrase_cache(make_settings(tts_cache_dir=str(tmp_path)))
    assert len(cache) == 0
