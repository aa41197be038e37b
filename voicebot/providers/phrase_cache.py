"""A bounded cache of synthesized phrases, shared by every call and every process.

Entries are keyed by (voice id, text) and hold whatever bytes the caller's factory made
(the call layer stores ready-to-send μ-law 8 kHz audio). Memory is bounded by entry count
and total bytes, least recently used out first. Concurrent requests for one phrase run
the factory once. Two shared layers let every process find what one of them made (the
voice webhook on one process prepares the greeting; the call's stream may land on
another): a directory of content-addressed files (sha256 of voice and text, written
atomically; bounded by ``max_disk_bytes``, least recently used out first, across
processes) and, optionally, a :class:`SharedPhrases` store such as Redis. A memory hit
awaits nothing; a shared layer that fails or stalls is skipped, never waited on twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

DEFAULT_MAX_ENTRIES = 512
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_DISK_BYTES = 256 * 1024 * 1024
# Pruning the directory leaves it at this share of max_disk_bytes (room before the next).
DISK_PRUNE_TARGET_RATIO = 0.8
# How many phrases warm() synthesises at once.
DEFAULT_WARM_CONCURRENCY = 4
CACHE_FILE_SUFFIX = ".phrase"


class SharedPhrases(Protocol):
    """A store every process reads and writes (Redis): bytes under a content hash.

    ``get`` answers None on a miss and on any failure; neither method raises or waits
    longer than its own bound."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, data: bytes) -> None: ...


PhraseFactory = Callable[[], Awaitable[bytes]]
TextFactory = Callable[[str], Awaitable[bytes]]


class PhraseCache:
    """LRU, single-flight, optionally disk-backed cache of phrase audio."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        directory: str | Path | None = None,
        max_disk_bytes: int = DEFAULT_MAX_DISK_BYTES,
        shared: SharedPhrases | None = None,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._directory = Path(directory) if directory is not None else None
        self._max_disk_bytes = max_disk_bytes
        self._disk_bytes: int | None = None  # estimate; None until the first scan
        self._shared = shared
        self.shared_hits = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self.total_bytes = 0
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, voice_id: str, text: str) -> bytes | None:
        """The cached bytes if they are in memory, without synthesising."""
        key = _key(voice_id, text)
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return data

    def remember(self, voice_id: str, text: str, data: bytes) -> None:
        """Keep audio synthesized elsewhere (in memory only, within the same bounds)."""
        if data:
            self._store(_key(voice_id, text), data)

    async def lookup(self, voice_id: str, text: str) -> bytes | None:
        """The cached bytes from memory, else from the shared layers (kept in memory
        after), without synthesising; None when no process has made this phrase."""
        data = self.peek(voice_id, text)
        if data is not None:
            return data
        key = _key(voice_id, text)
        data = await self._read_disk(key)
        if data is not None:
            self.disk_hits += 1
        elif self._shared is not None:
            data = await self._shared.get(key)
            if data is not None:
                self.shared_hits += 1
                await self._write_disk(key, data)
        if data is not None:
            self._store(key, data)
        return data

    async def get(self, voice_id: str, text: str, factory: PhraseFactory) -> bytes:
        """The phrase's bytes: from memory, else disk, else ``factory()`` (run once)."""
        key = _key(voice_id, text)
        while True:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return data
            pending = self._inflight.get(key)
            if pending is None:
                return await self._fill(key, factory)
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and (task is None or not task.cancelling()):
                    continue  # the leader was cancelled, not us: try again
                raise

    async def warm(
        self,
        voice_id: str,
        texts: Iterable[str],
        factory: TextFactory,
        *,
        concurrency: int = DEFAULT_WARM_CONCURRENCY,
    ) -> int:
        """Synthesise every text not yet cached; return how many were cached after it."""
        slots = asyncio.Semaphore(concurrency)

        async def one(text: str) -> None:
            async with slots:
                await self.get(voice_id, text, lambda: factory(text))

        async with asyncio.TaskGroup() as group:
            for text in dict.fromkeys(texts):
                group.create_task(one(text))
        return len(self._entries)

    async def _fill(self, key: str, factory: PhraseFactory) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        # Waiters may all be gone; retrieving the exception keeps asyncio from warning.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._inflight[key] = future
        written = False
        shared_written = False
        try:
            data = await self._read_disk(key)
            if data is not None:
                self.disk_hits += 1
                written = True
            elif self._shared is not None and (data := await self._shared.get(key)) is not None:
                self.shared_hits += 1
                shared_written = True
            else:
                self.misses += 1
                data = await factory()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            self._inflight.pop(key, None)
        self._store(key, data)
        future.set_result(data)
        if not written:
            await self._write_disk(key, data)
        if self._shared is not None and not shared_written and not written:
            await self._shared.put(key, data)
        return data

    def _store(self, key: str, data: bytes) -> None:
        if len(data) > self._max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.total_bytes -= len(old)
        self._entries[key] = data
        self.total_bytes += len(data)
        while len(self._entries) > self._max_entries or self.total_bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.total_bytes -= len(evicted)

    def _path(self, key: str) -> Path | None:
        return None if self._directory is None else self._directory / (key + CACHE_FILE_SUFFIX)

    async def _read_disk(self, key: str) -> bytes | None:
        path = self._path(key)
        # Most lookups (a model's sentences) miss: one stat of a local file (microseconds),
        # not a thread hop per sentence; a hit reads in a thread.
        if path is None or not os.path.exists(path):  # noqa: ASYNC240
            return None
        try:
            return await asyncio.to_thread(_read_and_touch, path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("phrase_cache.read_failed", path=str(path), error=str(exc))
            return None

    async def _write_disk(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path is None:
            return
        try:
            await asyncio.to_thread(_atomic_write, path, data)
        except OSError as exc:
            log.warning("phrase_cache.write_failed", path=str(path), error=str(exc))
            return
        if self._disk_bytes is not None:
            self._disk_bytes += len(data)
        if self._disk_bytes is None or self._disk_bytes > self._max_disk_bytes:
            await self.prune_disk()

    async def prune_disk(self) -> None:
        """Scan the directory (every process's files) and delete the least recently used
        files until it holds at most ``DISK_PRUNE_TARGET_RATIO`` of ``max_disk_bytes``
        (once it is over the limit)."""
        if self._directory is None:
            return
        try:
            self._disk_bytes = await asyncio.to_thread(
                _prune, self._directory, self._max_disk_bytes
            )
        except OSError as exc:
            log.warning("phrase_cache.prune_failed", error=str(exc))


def _key(voice_id: str, text: str) -> str:
    return hashlib.sha256(f"{voice_id}\x00{text}".encode()).hexdigest()


def _read_and_touch(path: Path) -> bytes:
    data = path.read_bytes()
    # A read is a use: the disk LRU goes by modification time.
    os.utime(path, None)
    return data


def _prune(directory: Path, max_bytes: int) -> int:
    """Delete the oldest-used cache files once the directory is over ``max_bytes``;
    returns the bytes left."""
    if not directory.is_dir():
        return 0
    files: list[tuple[float, int, Path]] = []
    for entry in os.scandir(directory):
        if entry.is_file() and entry.name.endswith(CACHE_FILE_SUFFIX):
            stat = entry.stat()
            files.append((stat.st_mtime, stat.st_size, Path(entry.path)))
    total = sum(size for _, size, _ in files)
    if total <= max_bytes:
        return total
    target = int(max_bytes * DISK_PRUNE_TARGET_RATIO)
    removed = 0
    for _, size, path in sorted(files):
        if total <= target:
            break
        path.unlink(missing_ok=True)  # another process may have pruned it first
        total -= size
        removed += 1
    log.info("phrase_cache.pruned", files=removed, bytes_left=total)
    return total


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=CACHE_FILE_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
