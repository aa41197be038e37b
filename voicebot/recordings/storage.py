"""Where recordings are kept: a local directory (the default) or any S3-compatible store.

A store has three async methods keyed by a relative name (``calls/42.wav``); file and
network I/O run in threads. ``RECORDING_S3_BUCKET`` selects S3 (AWS, MinIO, R2, …)
through the ``minio`` client (the ``s3`` extra); otherwise files go under
``RECORDING_DIR``. Failure: ``save`` raises :class:`~voicebot.errors.StorageError`;
``load`` answers None for a missing recording.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any, Protocol

from voicebot.config import Settings
from voicebot.errors import StorageError

WAV_CONTENT_TYPE = "audio/wav"


class RecordingStore(Protocol):
    async def save(self, key: str, data: bytes) -> None: ...

    async def load(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"bad recording key {key!r}")
    return key


class LocalStore:
    """Files under one directory (created on first save)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    async def save(self, key: str, data: bytes) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(path.suffix + ".part")
            partial.write_bytes(data)
            partial.replace(path)  # readers never see half a file

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise StorageError(f"cannot write recording {key}: {exc}") from exc

    async def load(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)


class S3Store:
    """Objects in one bucket of an S3-compatible service (the ``minio`` client)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return self.prefix + _safe_key(key)

    async def save(self, key: str, data: bytes) -> None:
        def put() -> None:
            self.client.put_object(
                self.bucket,
                self._name(key),
                io.BytesIO(data),
                len(data),
                content_type=WAV_CONTENT_TYPE,
            )

        try:
            await asyncio.to_thread(put)
        except Exception as exc:
            raise StorageError(f"cannot store recording {key}: {type(exc).__name__}") from exc

    async def load(self, key: str) -> bytes | None:
        def get() -> bytes | None:
            from minio.error import S3Error

            try:
                response = self.client.get_object(self.bucket, self._name(key))
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject"):
                    return None
                raise
            try:
                data: bytes = response.read()
                return data
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(get)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, self._name(key))


def build_store(settings: Settings) -> RecordingStore:
    """S3 when ``RECORDING_S3_BUCKET`` is set, else the local directory."""
    if settings.recording_s3_bucket:
        from minio import Minio  # the optional `s3` extra

        secret = settings.recording_s3_secret_key
        client = Minio(
            settings.recording_s3_endpoint or "s3.amazonaws.com",
            access_key=settings.recording_s3_access_key,
            secret_key=secret.get_secret_value() if secret is not None else None,
            secure=settings.recording_s3_secure,
            region=settings.recording_s3_region,
        )
        return S3Store(client, settings.recording_s3_bucket, settings.recording_s3_prefix)
    return LocalStore(Path(settings.recording_dir))
