"""Recordings on an S3-compatible server, through the product's own client (minio):
moto's S3 server on loopback speaks the S3 wire protocol (signed requests, XML errors).
A recording stored through the store downloads byte for byte from the API; an operator's
mistake (a missing bucket, wrong credentials, an endpoint with a scheme, an endpoint
nobody listens on) is said at start-up in one log line and answers 503 on download,
never a 500, and never touches a call."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog

from tests.conftest import make_settings
from voicebot.app import create_app
from voicebot.db.models import Call
from voicebot.errors import StorageError
from voicebot.recordings import storage
from voicebot.recordings.calls import recording_key, save_recording
from voicebot.recordings.storage import S3Store, build_store, check_store
from voicebot.recordings.track import CallAudio
from voicebot.testing.hostile_http import serve_raw, stall

moto_server = pytest.importorskip("moto.server")
minio = pytest.importorskip("minio")

BUCKET = "voicebot-recordings"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with BUCKET, and with request signatures
    checked against one IAM user's keys (ACCESS_KEY, SECRET_KEY) as AWS does: moto accepts
    any credentials until its authentication is switched on. Yields ``host:port``."""
    import json

    import boto3
    from moto import settings as moto_settings

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"{host}:{port}"
    iam = boto3.client(
        "iam",
        endpoint_url=f"http://{endpoint}",
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",  # moto accepts any key before auth is on
    )
    iam.create_user(UserName="voicebot")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="voicebot", PolicyName="s3", PolicyDocument=json.dumps(policy))
    keys = iam.create_access_key(UserName="voicebot")["AccessKey"]
    credentials = {"access_key": keys["AccessKeyId"], "secret_key": keys["SecretAccessKey"]}
    before = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # check every request's signature
    client = minio.Minio(endpoint, secure=False, region=REGION, **credentials)
    client.make_bucket(BUCKET)
    _KEYS.update(credentials)
    try:
        yield endpoint
    finally:
        moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = before
        server.stop()


_KEYS: dict[str, str] = {}
"""The IAM user's access key and secret, once the server is up."""


def _s3_settings(endpoint: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "recording_s3_bucket": BUCKET,
        "recording_s3_endpoint": endpoint,
        "recording_s3_access_key": _KEYS["access_key"],
        "recording_s3_secret_key": _KEYS["secret_key"],
        "recording_s3_region": REGION,
        "recording_s3_secure": False,
        "recording_s3_prefix": "tenant-a/",
    }
    values.update(overrides)
    return make_settings(**values)


def _audio() -> CallAudio:
    """Two seconds of a call: a tone from the caller, another from the agent."""
    import math

    from voicebot.audio.codec import pcm16_to_ulaw

    audio = CallAudio(max_s=10)
    audio.start()
    frame_samples = 160
    for n in range(100):
        caller = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * (n * frame_samples + i) / 8000)).to_bytes(
                2, "little", signed=True
            )
            for i in range(frame_samples)
        )
        audio.on_caller(pcm16_to_ulaw(caller))
        audio.on_agent(pcm16_to_ulaw(caller[::-1]))
    return audio


async def test_round_trip_through_the_s3_wire(s3_endpoint: str) -> None:
    """save → load gives the same bytes under the prefix; a missing key is None; delete
    removes it; the start-up check passes."""
    settings = _s3_settings(s3_endpoint)
    store = build_store(settings)
    assert isinstance(store, S3Store)
    data = b"RIFF" + bytes(range(256)) * 64
    await store.save("calls/1.wav", data)
    assert await store.load("calls/1.wav") == data
    objects = [o.object_name for o in store.client.list_objects(BUCKET, recursive=True)]
    assert "tenant-a/calls/1.wav" in objects
    assert await store.load("calls/2.wav") is None
    await store.delete("calls/1.wav")
    assert await store.load("calls/1.wav") is None
    assert await check_store(settings)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_recorded_call_downloads_from_s3(database_url: str, s3_endpoint: str) -> None:
    """A call's mixed WAV saved by save_recording lands in the bucket and the API serves
    it (200, audio/wav, the same bytes as the mix)."""
    settings = _s3_settings(s3_endpoint, database_url=database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.voicebot
        async with state.sessions() as session:
            call = Call(call_sid="CA" + "5" * 32, status="completed")
            session.add(call)
            await session.commit()
            call_id = call.id
        audio = _audio()
        await save_recording(state, call_id, audio)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(f"/api/v1/calls/{call_id}/recording")
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/wav"
        assert response.content == audio.wav()
        assert response.content[:4] == b"RIFF"
        key = "tenant-a/" + recording_key(call_id)
        stat = build_store(settings).client.stat_object(BUCKET, key)  # type: ignore[attr-defined]
        assert stat.size == len(response.content)


BAD_CONFIGS = {
    "missing-bucket": {"recording_s3_bucket": "no-such-bucket"},
    "wrong-secret": {"recording_s3_secret_key": "not-the-secret"},
    "wrong-key": {"recording_s3_access_key": "AKIA" + "N" * 16},
    "nobody-listens": {"recording_s3_endpoint": "127.0.0.1:1"},
}


@contextlib.contextmanager
def _captured() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as logs:
        yield logs


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("mistake", sorted(BAD_CONFIGS))
async def test_operator_mistake_is_said_at_start_and_is_a_503(
    database_url: str, s3_endpoint: str, mistake: str
) -> None:
    """A missing bucket, a wrong secret or key, an endpoint nobody listens on: start-up
    logs recordings.store_unusable once with the reason; saving a call's recording logs
    call.recording_not_saved (the call is unaffected); downloading one answers 503
    storage_unavailable, not a 500."""
    settings = _s3_settings(s3_endpoint, database_url=database_url, **BAD_CONFIGS[mistake])
    app = create_app(settings)
    with _captured() as logs:
        async with asyncio.timeout(60), app.router.lifespan_context(app):
            state = app.state.voicebot
            async with state.sessions() as session:
                call = Call(
                    call_sid="CA" + "6" * 32,
                    status="completed",
                    recording_key=recording_key(1),
                )
                session.add(call)
                await session.commit()
                call_id = call.id
            await save_recording(state, call_id, _audio())
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get(f"/api/v1/calls/{call_id}/recording")
    unusable = [e for e in logs if e["event"] == "recordings.store_unusable"]
    assert len(unusable) == 1, [e["event"] for e in logs]
    assert _KEYS["secret_key"] not in str(logs) and "not-the-secret" not in str(logs)
    assert any(e["event"] == "call.recording_not_saved" for e in logs)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "storage_unavailable"


async def test_endpoint_with_a_scheme_is_a_clear_error(s3_endpoint: str) -> None:
    """RECORDING_S3_ENDPOINT=http://host:port (minio wants host:port): StorageError
    naming the setting, from build_store and from the start-up check (no raw ValueError)."""
    settings = _s3_settings(f"http://{s3_endpoint}")
    with pytest.raises(StorageError, match="RECORDING_S3_ENDPOINT"):
        build_store(settings)
    with _captured() as logs:
        assert not await check_store(settings)
    (event,) = [e for e in logs if e["event"] == "recordings.store_unusable"]
    assert "RECORDING_S3_ENDPOINT" in event["error"]


async def test_stalled_store_never_holds_the_default_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An S3 endpoint that takes requests and never answers: more saves at once than the
    default executor has threads leave it free (Twilio REST requests and the phrase cache
    of live calls run there), and each save fails within S3_OPERATION_TIMEOUT_S."""
    monkeypatch.setattr(storage, "S3_OPERATION_TIMEOUT_S", 1.5)
    default_threads = min(32, (os.cpu_count() or 1) + 4)
    async with serve_raw(stall()) as blackhole:
        endpoint = blackhole.base_url.removeprefix("http://")
        settings = make_settings(
            recording_s3_bucket=BUCKET,
            recording_s3_endpoint=endpoint,
            recording_s3_access_key="AKIA" + "B" * 16,
            recording_s3_secret_key="blackhole-secret",
            recording_s3_region=REGION,
            recording_s3_secure=False,
        )
        store = build_store(settings)
        saves = [
            asyncio.create_task(store.save(f"calls/{n}.wav", b"RIFF" + bytes(1000)))
            for n in range(default_threads + 2)
        ]
        try:
            await asyncio.sleep(0.5)  # every save is waiting on the blackhole now
            assert await asyncio.wait_for(asyncio.to_thread(lambda: 42), 2.0) == 42
            async with asyncio.timeout(10):
                results = await asyncio.gather(*saves, return_exceptions=True)
        finally:
            for task in saves:
                task.cancel()
    assert all(isinstance(r, StorageError) for r in results), results
    assert "no answer" in str(results[0])
