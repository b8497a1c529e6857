"""A two-level result store: an in-memory LRU over a size-bounded diskcache.

Values are the serialized (JSON) bytes of a result, so a hit hands back exactly the bytes
a recompute would produce and needs no re-serialization on the way out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import diskcache


@dataclass
class CacheStats:
    hits: int
    misses: int
    memory_items: int
    memory_bytes: int
    disk_items: int
    disk_bytes: int
    disk_limit_bytes: int
    directory: str

    def as_dict(self) -> dict:
        return asdict(self)


class ResultCache:
    def __init__(self, directory: Path, *, size_limit_bytes: int, memory_items: int = 256):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._disk = diskcache.Cache(
            str(self.directory), size_limit=size_limit_bytes, eviction_policy="least-recently-used"
        )
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._memory_items = memory_items
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._memory.get(key)
            if value is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return value
        value = self._disk.get(key)
        with self._lock:
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._remember(key, value)
        return value

    def set(self, key: str, value: bytes) -> None:
        self._disk.set(key, value)
        with self._lock:
            self._remember(key, value)

    def _remember(self, key: str, value: bytes) -> None:
        self._memory[key] = value
        self._memory.move_to_end(key)
        while len(self._memory) > self._memory_items:
            self._memory.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._memory.clear()
            self.hits = self.misses = 0
        self._disk.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            mem_items, mem_bytes = len(self._memory), sum(map(len, self._memory.values()))
            hits, misses = self.hits, self.misses
        return CacheStats(
            hits=hits,
            misses=misses,
            memory_items=mem_items,
            memory_bytes=mem_bytes,
            disk_items=len(self._disk),
            disk_bytes=self._disk.volume(),
            disk_limit_bytes=self._disk.size_limit,
            directory=str(self.directory),
        )

    def close(self) -> None:
        self._disk.close()
