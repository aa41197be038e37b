"""Where recordings are kept: a local directory (the default) or any S3-compatible store.

A store has three async methods keyed by a relative name (``calls/42.wav``); file and
network I/O run in threads. ``RECORDING_S3_BUCKET`` selects S3 (AWS, MinIO, R2, …)
through the ``minio`` client (the ``s3`` extra); otherwise files go under
``RECORDING_DIR``. Failure: every method raises :class:`~voicebot.errors.StorageError`
(503 at the API) when the store refuses or cannot be reached, including a missing
bucket, wrong credentials, a malformed endpoint or the ``s3`` extra not installed;
``load`` answers None only for a recording that is not there. :func:`check_store` says
at start-up, in one log line, why a configured store cannot be used.

S3 requests run on the store's own small thread pool with short socket timeouts
(:data:`S3_CONNECT_TIMEOUT_S`, :data:`S3_READ_TIMEOUT_S`, :data:`S3_RETRIES`) and an
overall :data:`S3_OPERATION_TIMEOUT_S`: a store that accepts connections and never
answers fails the recording within a minute and never holds the default executor, which
the Twilio REST requests and the phrase cache of live calls share (minio's own defaults,
5 minutes per read and 5 retries, held its threads for half an hour).
"""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import structlog

from voicebot.config import Settings
from voicebot.errors import StorageError

log = structlog.get_logger(__name__)

WAV_CONTENT_TYPE = "audio/wav"
MISSING_OBJECT_CODES: Final = frozenset({"NoSuchKey", "NoSuchObject"})
"""S3 error codes that mean "no such recording" (any other code is the store's fault)."""
CHECK_TIMEOUT_S: Final = 10.0
"""How long the start-up check waits for the store to answer."""
S3_CONNECT_TIMEOUT_S: Final = 5.0
S3_READ_TIMEOUT_S: Final = 20.0
"""Longest silence inside one S3 response (a call's WAV is a few MB)."""
S3_RETRIES: Final = 2
"""Retries of one S3 request (connection errors, 500/502/503/504), 0.2 s backoff."""
S3_OPERATION_TIMEOUT_S: Final = 60.0
"""An S3 operation, retries included, fails after this long (its thread may linger)."""
S3_THREADS: Final = 4
"""Threads S3 requests run on, apart from the default executor."""

T = TypeVar("T")


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
        except OSError as exc:  # a directory that is a file, no permission: the store's fault
            raise StorageError(f"cannot read recording {key}: {exc}") from exc

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)


class S3Store:
    """Objects in one bucket of an S3-compatible service (the ``minio`` client).

    ``prefix`` is a folder in the bucket: ``"tenant-a"``, ``"tenant-a/"`` and
    ``"/tenant-a/"`` all store ``calls/1.wav`` as ``tenant-a/calls/1.wav``."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        folder = prefix.strip("/")
        self.prefix = f"{folder}/" if folder else ""
        self._pool = ThreadPoolExecutor(max_workers=S3_THREADS, thread_name_prefix="s3")

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the store's pool, within S3_OPERATION_TIMEOUT_S."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(S3_OPERATION_TIMEOUT_S):
            return await loop.run_in_executor(self._pool, functools.partial(func, *args))

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
            await self._run(put)
        except Exception as exc:  # the client's errors, as in load
            raise StorageError(f"cannot store recording {key}: {_describe(exc)}") from exc

    async def load(self, key: str) -> bytes | None:
        def get() -> bytes | None:
            from minio.error import S3Error

            try:
                response = self.client.get_object(self.bucket, self._name(key))
            except S3Error as exc:
                if exc.code in MISSING_OBJECT_CODES:
                    return None
                raise
            try:
                data: bytes = response.read()
                return data
            finally:
                response.close()
                response.release_conn()

        name = self._name(key)
        try:
            return await self._run(get)
        except Exception as exc:  # the client's errors: S3Error, urllib3's, ValueError
            raise StorageError(f"cannot read recording {name}: {_describe(exc)}") from exc

    async def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            await self._run(self.client.remove_object, self.bucket, name)
        except Exception as exc:  # the client's errors, as in load
            raise StorageError(f"cannot delete recording {name}: {_describe(exc)}") from exc

    async def check(self) -> None:
        """Raise StorageError unless the bucket exists and these credentials may see it."""
        try:
            exists = await self._run(self.client.bucket_exists, self.bucket)
        except Exception as exc:  # the client's errors, as in load
            raise StorageError(f"bucket {self.bucket!r}: {_describe(exc)}") from exc
        if not exists:
            raise StorageError(f"bucket {self.bucket!r} does not exist")


def _describe(exc: Exception) -> str:
    """The S3 error code (``NoSuchBucket``, ``InvalidAccessKeyId``…) or the error type;
    never the request's headers or credentials."""
    if isinstance(exc, TimeoutError):
        return f"no answer in {S3_OPERATION_TIMEOUT_S:g} s"
    code = getattr(exc, "code", None)
    return f"{type(exc).__name__} {code}" if isinstance(code, str) else type(exc).__name__


def build_store(settings: Settings) -> RecordingStore:
    """S3 when ``RECORDING_S3_BUCKET`` is set, else the local directory. Raises
    StorageError when the S3 client cannot be built (the ``s3`` extra is not installed,
    the endpoint is malformed)."""
    if settings.recording_s3_bucket:
        try:
            import certifi  # installed with minio
            import urllib3
            from minio import Minio  # the optional `s3` extra
        except ImportError as exc:
            raise StorageError(
                "RECORDING_S3_BUCKET is set but the minio client is not installed "
                "(pip install 'voicebot[s3]')"
            ) from exc
        secret = settings.recording_s3_secret_key
        endpoint = settings.recording_s3_endpoint or "s3.amazonaws.com"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=S3_CONNECT_TIMEOUT_S, read=S3_READ_TIMEOUT_S),
            maxsize=S3_THREADS,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            retries=urllib3.Retry(
                total=S3_RETRIES, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        try:
            client = Minio(
                endpoint,
                access_key=settings.recording_s3_access_key,
                secret_key=secret.get_secret_value() if secret is not None else None,
                secure=settings.recording_s3_secure,
                region=settings.recording_s3_region,
                http_client=http,
            )
        except ValueError as exc:  # minio refuses a scheme or a path in the endpoint
            raise StorageError(f"RECORDING_S3_ENDPOINT {endpoint!r}: {exc}") from exc
        return S3Store(client, settings.recording_s3_bucket, settings.recording_s3_prefix)
    return LocalStore(Path(settings.recording_dir))


async def check_store(settings: Settings) -> bool:
    """At start-up: can the configured S3 store be used? Logs ``recordings.store_unusable``
    with the reason (error) and answers False when not; True for a usable store or the
    local directory (created on first save). Never raises: calls go on unrecorded."""
    if not settings.recording_s3_bucket:
        return True
    try:
        store = build_store(settings)
        if isinstance(store, S3Store):
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await store.check()
    except (StorageError, TimeoutError) as exc:
        reason = exc.message if isinstance(exc, StorageError) else "no answer"
        log.error("recordings.store_unusable", bucket=settings.recording_s3_bucket, error=reason)
        return False
    return True
