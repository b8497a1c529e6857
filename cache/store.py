"""A two-level result store: an in-memory LRU over a size-bounded diskcache.

Values are the serialized (JSON) bytes of a result, so a hit hands back exactly the bytes
a recompute would produce and needs no re-serialization on the way out. Both levels are
bounded in bytes.

Damage never stops the engine and is never served:
- each value is stored behind a checksum of it; a value that does not match (a garbage or
  cut-short value file) is a miss, dropped from the disk cache with a warning;
- a ``cache.db`` that SQLite cannot open or check is moved aside, with diskcache's value
  folders, into ``<directory>/damaged-<time>/`` with a warning, and a fresh cache starts;
- a directory the engine cannot write leaves the disk level off, with a message naming the
  directory (``disk_error`` in the stats, shown in the sidebar): results are then kept in
  memory only, so a read-only home directory still gives a working (slower) engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import diskcache

log = logging.getLogger(__name__)
MAGIC = b"isc1"
DIGEST = 16  # bytes of blake2b in front of each stored value
DISKCACHE_ENTRIES = re.compile(r"^(cache\.db(-wal|-shm|-journal)?|[0-9a-f]{2})$")


@dataclass
class CacheStats:
    hits: int
    misses: int
    memory_items: int
    memory_bytes: int
    memory_limit_bytes: int
    disk_items: int
    disk_bytes: int
    disk_limit_bytes: int
    directory: str
    disk_error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def seal(value: bytes) -> bytes:
    return MAGIC + hashlib.blake2b(value, digest_size=DIGEST).digest() + value


def unseal(stored: object) -> bytes | None:
    """The value a sealed record holds, or None when it is not intact."""
    if not isinstance(stored, bytes) or not stored.startswith(MAGIC):
        return None
    head = len(MAGIC) + DIGEST
    value = stored[head:]
    if hashlib.blake2b(value, digest_size=DIGEST).digest() != stored[len(MAGIC) : head]:
        return None
    return value


def move_aside(directory: Path) -> Path:
    """Move diskcache's files (``cache.db*`` and its value folders) into ``damaged-<time>/``;
    the graphs and example sets that share the directory stay."""
    dest = directory / f"damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    dest.mkdir(exist_ok=True)
    for entry in directory.iterdir():
        if DISKCACHE_ENTRIES.match(entry.name):
            entry.rename(dest / entry.name)
    return dest


def open_disk(directory: Path, size_limit: int) -> diskcache.Cache:
    """diskcache over `directory`; a damaged database is moved aside and replaced."""

    def attempt() -> diskcache.Cache:
        disk = diskcache.Cache(
            str(directory), size_limit=size_limit, eviction_policy="least-recently-used"
        )
        try:
            (status,) = disk._sql("PRAGMA quick_check").fetchone()
            if status != "ok":
                raise sqlite3.DatabaseError(status)
        except BaseException:
            disk.close()
            raise
        return disk

    try:
        return attempt()
    except sqlite3.OperationalError:
        raise  # locked, read-only or cannot be created: not damage
    except sqlite3.DatabaseError as e:  # "file is not a database", "malformed", a failed check
        dest = move_aside(directory)
        log.warning("The result cache in %s was damaged (%s): moved it to %s; starting a fresh "
                    "cache.", directory, e, dest)  # fmt: skip
        return attempt()


class ResultCache:
    def __init__(self, directory: Path, *, size_limit_bytes: int, memory_limit_bytes: int):
        self.directory = Path(directory)
        self.disk_error: str | None = None
        self._disk: diskcache.Cache | None = None
        self._disk_limit = size_limit_bytes
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._disk = open_disk(self.directory, size_limit_bytes)
        except (OSError, sqlite3.Error) as e:
            self._disk_failed("cannot be used", e)
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_bytes = 0
        self._memory_limit = memory_limit_bytes
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _disk_failed(self, what: str, e: Exception) -> None:
        self.disk_error = (
            f"The cache directory {self.directory} {what} ({type(e).__name__}: {e}): results "
            "are kept in memory only. Make it writable, or start the engine with --cache-dir."
        )
        log.warning("%s", self.disk_error)
        if self._disk is not None:
            self._disk.close()
        self._disk = None

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._memory.get(key)
            if value is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return value
        value = self._disk_get(key)
        with self._lock:
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, value)
        return value

    def _disk_get(self, key: str) -> bytes | None:
        disk = self._disk
        if disk is None:
            return None
        try:
            stored = disk.get(key)
        except (OSError, sqlite3.Error) as e:
            log.warning("result cache read failed (%s): treated as a miss", e)
            return None
        if stored is None:
            return None
        value = unseal(stored)
        if value is None:
            log.warning("result cache: the stored value of %s is damaged; dropped it", key)
            with contextlib.suppress(OSError, sqlite3.Error):
                disk.delete(key)
        return value

    def set(self, key: str, value: bytes) -> None:
        if self._disk is not None:
            try:
                self._disk.set(key, seal(value))
            except (OSError, sqlite3.Error) as e:
                self._disk_failed("cannot be written", e)
        with self._lock:
            self._remember(key, value)

    def _remember(self, key: str, value: bytes) -> None:
        old = self._memory.pop(key, None)
        if old is not None:
            self._memory_bytes -= len(old)
        if len(value) > self._memory_limit:
            return  # larger than the whole memory level: disk only
        self._memory[key] = value
        self._memory_bytes += len(value)
        while self._memory_bytes > self._memory_limit:
            _, dropped = self._memory.popitem(last=False)
            self._memory_bytes -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
            self._memory_bytes = 0
            self.hits = self.misses = 0
        if self._disk is not None:
            self._disk.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            mem_items, mem_bytes = len(self._memory), self._memory_bytes
            hits, misses = self.hits, self.misses
        disk = self._disk
        return CacheStats(
            hits=hits,
            misses=misses,
            memory_items=mem_items,
            memory_bytes=mem_bytes,
            memory_limit_bytes=self._memory_limit,
            disk_items=len(disk) if disk is not None else 0,
            disk_bytes=disk.volume() if disk is not None else 0,
            disk_limit_bytes=self._disk_limit,
            directory=str(self.directory),
            disk_error=self.disk_error,
        )

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
