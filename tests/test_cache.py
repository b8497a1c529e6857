"""A cache hit returns exactly what a recompute returns; keys separate what differs."""

from __future__ import annotations

import json

from cache import ResultCache, result_key
from engine.schemas.analyses import AnalysisRequest

PROMPT = "The capital of France is Paris. The capital of Spain is"


def test_hit_equals_recompute(engine):
    req = AnalysisRequest(prompt=PROMPT, params={"top_k": 7})
    engine.cache.clear()
    engine.runs.clear()
    first = engine.analyze("predictions", req)
    assert engine.cache.stats().misses == 1
    hit = engine.analyze("predictions", req)
    assert engine.cache.stats().hits == 1
    engine.cache.clear()
    engine.runs.clear()
    recomputed = engine.analyze("predictions", req)
    assert hit == first == recomputed  # byte-for-byte
    assert json.loads(hit)["top"][0][0]["id"] == json.loads(recomputed)["top"][0][0]["id"]


def test_disk_hit_after_memory_eviction_equals_recompute(tmp_path):
    cache = ResultCache(tmp_path, size_limit_bytes=1 << 20, memory_limit_bytes=10)
    cache.set("a", b'{"x": 1}')
    cache.set("b", b'{"x": 2}')  # evicts "a" from memory (8 + 8 bytes > 10)
    assert cache.get("a") == b'{"x": 1}'
    assert cache.stats().hits == 1 and cache.stats().memory_items == 1


def test_keys_separate_model_tokens_analysis_version_params():
    base = dict(fingerprint="m@1", token_ids=[1, 2], analysis="a", version=1, params={"k": 1})
    key = result_key(**base)
    assert key == result_key(**{**base, "params": {"k": 1}})
    for change in (
        {"fingerprint": "m@2"},
        {"token_ids": [1, 3]},
        {"analysis": "b"},
        {"version": 2},
        {"params": {"k": 2}},
        {"params": {"k": 1, "steer": {"latent": 3, "coef": 2.0}}},
    ):
        assert result_key(**{**base, **change}) != key, change
    assert result_key(**{**base, "params": {"b": 1, "a": 2}}) == result_key(
        **{**base, "params": {"a": 2, "b": 1}}
    )


def test_disk_size_is_bounded(tmp_path):
    limit = 200_000
    cache = ResultCache(tmp_path, size_limit_bytes=limit, memory_limit_bytes=20_000)
    for i in range(100):
        cache.set(f"k{i}", bytes(10_000))
    cache._disk.cull()
    assert cache.stats().disk_bytes <= limit * 1.5
    assert cache.stats().disk_items < 100


def test_stats_are_served(api):
    api.post("/analysis/predictions", json={"prompt": "stats please", "params": {}})
    api.post("/analysis/predictions", json={"prompt": "stats please", "params": {}})
    stats = api.get("/cache/stats").json()
    assert stats["hits"] >= 1 and stats["misses"] >= 1 and stats["disk_bytes"] > 0
    cleared = api.post("/cache/clear").json()
    assert cleared["hits"] == 0 and cleared["disk_items"] == 0
