"""Result cache: content-addressed keys and a size-bounded disk store with an LRU in front."""

from cache.keys import result_key
from cache.store import CacheStats, ResultCache

__all__ = ["CacheStats", "ResultCache", "result_key"]
