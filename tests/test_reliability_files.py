"""Issue 12, as an unlucky machine would have it: a write killed half-way (left as a truncated
file or a temporary file), a damaged graph index, a garbage ``cache.db``, a garbage value file,
a read-only cache directory, two people editing a graph's pins at once, and folders that
would grow without bound."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cache import ResultCache
from components.graph_panel import save_qparams
from engine import atomic
from engine.api import create_app
from engine.client import EngineClient
from engine.graphs.schemas import GraphInfo, QParamsUpdate
from engine.graphs.service import graph_service
from engine.graphs.store import INDEX, GraphStore
from engine.service import Engine
from engine.settings import EngineSettings

NODES = [f"0_{i}_1" for i in range(40)]


def fake_graph(store: GraphStore, slug: str, created: float, *, pad: int = 0) -> None:
    """A graph's files as the engine writes them (circuit-tracer's schema, minimal)."""
    meta = {"slug": slug, "scan": "test", "prompt": "p", "prompt_tokens": ["p"]}
    doc = {"metadata": meta, "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both",
           "clickedId": "", "sg_pos": ""}, "nodes": [{"node_id": n} for n in NODES],
           "links": [], "pad": "x" * pad}  # fmt: skip
    store.write_graph_json(slug, doc)
    store.index_add(meta)
    store.write_info(GraphInfo(slug=slug, kind="transcoder", model="m", fingerprint="f",
                               prompt="p", token_ids=[1], params={}, n_nodes=len(NODES),
                               n_links=0, seconds=0.1, created=created))  # fmt: skip


@pytest.fixture
def store(tmp_path) -> GraphStore:
    s = GraphStore(tmp_path / "graphs")
    for i, slug in enumerate(["g-one", "g-two", "g-three"]):
        fake_graph(s, slug, created=1000.0 + i)
    return s


@pytest.fixture
def eng(tiny_model_dir, tmp_path):
    e = Engine(EngineSettings(model=str(tiny_model_dir), cache_dir=tmp_path / "cache"))
    yield e
    e.close()


@pytest.fixture
def api(eng):
    with TestClient(create_app(eng)) as client:
        yield client


# --- graph files: killed writes, damaged index --------------------------------------------------
def test_a_killed_pin_update_leaves_the_old_file_whole(store, monkeypatch):
    before = store.json_path("g-one").read_bytes()

    def killed(src, dst):  # the process dies after writing the temp file, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        store.set_qparams("g-one", QParamsUpdate(pinnedIds=NODES[:2]))
    monkeypatch.undo()
    assert store.json_path("g-one").read_bytes() == before
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".tmp-")] == []
    assert "g-one" in [g.slug for g in store.list()]


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_graph_file_is_not_listed_and_regenerates(store, damage):
    path = store.json_path("g-two")
    data = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    (store.root / ".tmp-abc.json").write_bytes(data[:100])  # a killed write's leftover
    assert [g.slug for g in store.list()] == ["g-three", "g-one"]
    assert not store.exists("g-two")  # so the job computes it again instead of reusing it
    fake_graph(store, "g-two", created=2000.0)  # regeneration writes it whole
    assert store.exists("g-two") and store.graph_json("g-two")["metadata"]["slug"] == "g-two"


@pytest.mark.parametrize("content", [b"", b'{"graphs": [{"slug": "g-o', b"\x00garbage", b"[1, 2]"])
def test_a_damaged_index_is_rebuilt_from_the_graph_files(store, content):
    (store.root / INDEX).write_bytes(content)
    fake_graph(store, "g-four", created=2000.0)  # the next graph job still works
    index = json.loads((store.root / INDEX).read_text())
    assert [g["slug"] for g in index["graphs"]] == ["g-one", "g-two", "g-three", "g-four"]
    (store.root / INDEX).write_bytes(content)
    store.delete("g-one")  # and DELETE too
    assert [g["slug"] for g in json.loads((store.root / INDEX).read_text())["graphs"]] == [
        "g-two", "g-three", "g-four"]  # fmt: skip


def test_over_http_damage_never_gives_a_500(eng, api):
    store = graph_service(eng).store
    fake_graph(store, "g-one", 1.0)
    fake_graph(store, "g-two", 2.0)
    (store.root / INDEX).write_bytes(b'{"graphs": [')
    store.json_path("g-two").write_bytes(b"")
    assert api.delete("/graphs/g-one").status_code == 200
    assert api.get("/graphs/g-two").status_code == 404
    assert api.delete("/graphs/g-two").status_code == 200  # a damaged graph can be deleted
    assert api.delete("/graphs/g-two").status_code == 404
    assert api.get("/graphs?all_models=true").json() == []


def test_reads_during_writes_are_never_cut_short(store):
    """A reader racing a writer sees the old file or the new one, whole."""
    stop = threading.Event()
    seen: list[bool] = []

    def write():
        i = 0
        while not stop.is_set():
            store.set_qparams("g-one", QParamsUpdate(pinnedIds=NODES[: i % 30 + 1]))
            i += 1

    t = threading.Thread(target=write)
    t.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            seen.append(isinstance(json.loads(store.json_path("g-one").read_bytes()), dict))
    finally:
        stop.set()
        t.join()
    assert len(seen) > 10 and all(seen)


# --- concurrent pin edits -----------------------------------------------------------------------
def test_a_stale_pin_edit_is_a_409_with_the_saved_pins(eng, api):
    fake_graph(graph_service(eng).store, "g-one", 1.0)
    v0 = api.get("/graphs/g-one/qparams").json()["version"]
    a = api.put("/graphs/g-one/qparams", json={"pinnedIds": [NODES[0]], "version": v0})
    assert a.status_code == 200 and a.json()["version"] == v0 + 1
    b = api.put("/graphs/g-one/qparams", json={"pinnedIds": [NODES[1]], "version": v0})
    assert b.status_code == 409 and b.json()["error"]["code"] == "stale_qparams"
    assert b.json()["error"]["detail"] == {"version": v0 + 1, "qParams": {
        "pinnedIds": [NODES[0]], "supernodes": [], "linkType": "both", "clickedId": "",
        "sg_pos": ""}}  # fmt: skip
    assert api.get("/graphs/g-one").json()["qParams"]["pinnedIds"] == [NODES[0]]


def test_two_clients_pinning_at_once_lose_nothing(eng, api):
    """Eight app sessions each pin five nodes, all starting from the same version, through
    the app's own save (components/graph_panel.save_qparams)."""
    fake_graph(graph_service(eng).store, "g-one", 1.0)
    v0 = api.get("/graphs/g-one/qparams").json()["version"]
    errors: list[Exception] = []

    def session(k: int) -> None:
        client = EngineClient("http://testserver")
        client._http = TestClient(api.app)
        version, pins, groups = v0, [], []
        try:
            for nid in NODES[5 * k : 5 * k + 5]:
                q = save_qparams(client, "g-one", lambda p, g, n=nid: (p + [n], g),
                                 (pins, groups), version, nid)  # fmt: skip
                version, pins, groups = q["version"], q["pinnedIds"], q["supernodes"]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=session, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    saved = api.get("/graphs/g-one/qparams").json()
    assert sorted(saved["pinnedIds"]) == sorted(NODES) and saved["version"] == v0 + 40


# --- sizes ----------------------------------------------------------------------------------------
def test_saved_graphs_are_bounded_in_bytes_oldest_first(tmp_path):
    store = GraphStore(tmp_path / "g", size_limit_bytes=60_000)
    for i in range(5):
        fake_graph(store, f"g-{i}", created=float(i), pad=20_000)
        store.enforce_limit(keep=f"g-{i}")
        assert store.usage_bytes() <= 60_000 and store.exists(f"g-{i}")
    assert [g.slug for g in store.list()] == ["g-4", "g-3"]
    index = json.loads((store.root / INDEX).read_text())
    assert [g["slug"] for g in index["graphs"]] == ["g-3", "g-4"]


def test_memory_cache_is_bounded_in_bytes(tmp_path):
    cache = ResultCache(tmp_path, size_limit_bytes=1 << 24, memory_limit_bytes=100_000)
    for i in range(30):
        cache.set(f"k{i}", bytes(10_000))
        assert cache.stats().memory_bytes <= 100_000
    assert cache.stats().memory_items == 10
    cache.set("huge", bytes(200_000))  # larger than the memory level: kept on disk only
    assert cache.stats().memory_bytes <= 100_000 and cache.get("huge") == bytes(200_000)


def test_limits_are_in_the_stats(api, eng):
    stats = api.get("/cache/stats").json()
    assert stats["memory_limit_bytes"] == eng.settings.memory_cache_mb << 20
    assert stats["graphs_limit_bytes"] == eng.settings.graphs_size_mb << 20
    assert stats["graphs_bytes"] is not None and stats["disk_error"] is None


# --- the result cache: damage ---------------------------------------------------------------------
@pytest.mark.parametrize("garbage", [b"garbage" * 100, b"", b"SQLite format 3\x00" + b"\xff" * 500])
def test_a_garbage_cache_db_is_moved_aside_and_the_engine_serves(tiny_model_dir, tmp_path, garbage,
                                                                  caplog):  # fmt: skip
    cache_dir = tmp_path / "cache"
    (cache_dir / "graphs").mkdir(parents=True)
    (cache_dir / "graphs" / "keep.json").write_text("{}")
    (cache_dir / "cache.db").write_bytes(garbage)
    with caplog.at_level(logging.WARNING):
        eng = Engine(EngineSettings(model=str(tiny_model_dir), cache_dir=cache_dir))
    try:
        with TestClient(create_app(eng)) as api:
            body = {"prompt": "Once upon a time", "params": {}}
            first = api.post("/analysis/predictions", json=body)
            assert first.status_code == 200
            assert api.post("/analysis/predictions", json=body).content == first.content
            assert api.get("/cache/stats").json()["disk_items"] >= 1
    finally:
        eng.close()
    assert (cache_dir / "graphs" / "keep.json").is_file()  # saved graphs stay
    if garbage:  # an empty file is a valid empty database to SQLite
        aside = list(cache_dir.glob("damaged-*/cache.db"))
        assert len(aside) == 1 and aside[0].read_bytes() == garbage
        assert "damaged" in caplog.text and str(cache_dir) in caplog.text


@pytest.mark.parametrize("size", [100, 100_000])  # in the database, and in a value file
def test_a_garbage_value_is_never_served(tmp_path, size, caplog):
    cache = ResultCache(tmp_path, size_limit_bytes=1 << 24, memory_limit_bytes=1 << 20)
    value = json.dumps({"x": "y" * size}).encode()
    cache.set("k", value)
    files = [p for p in tmp_path.rglob("*.val")]
    if size > 50_000:
        assert len(files) == 1
        files[0].write_bytes(b"\x00garbage" + value[: size // 2])
    else:
        cache._disk.set("k", b"isc1" + b"\x00" * 16 + b'{"x": "tampered"}')
    cache._memory.clear()
    cache._memory_bytes = 0
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None  # a miss: recomputed, not served
    assert "damaged" in caplog.text and "k" not in cache._disk
    cache.set("k", value)
    cache._memory.clear()
    assert cache.get("k") == value


def test_values_from_before_the_checksum_are_misses(tmp_path):
    cache = ResultCache(tmp_path, size_limit_bytes=1 << 24, memory_limit_bytes=1 << 20)
    cache._disk.set("old", b'{"unchecked": true}')
    assert cache.get("old") is None


def _assert_memory_only(cache: ResultCache, directory: Path, log_text: str) -> None:
    cache.set("k", b'{"v": 1}')
    assert cache.get("k") == b'{"v": 1}'  # served, from memory
    stats = cache.stats()
    assert stats.disk_items == 0 and str(directory) in stats.disk_error
    assert "--cache-dir" in stats.disk_error and str(directory) in log_text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_cache_dir_is_named_and_results_stay_in_memory(tmp_path, caplog):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        with caplog.at_level(logging.WARNING):
            cache = ResultCache(ro, size_limit_bytes=1 << 20, memory_limit_bytes=1 << 20)
        _assert_memory_only(cache, ro, caplog.text)
    finally:
        os.chmod(ro, 0o755)


def test_a_cache_sqlite_cannot_write_is_named_and_results_stay_in_memory(
    tmp_path, monkeypatch, caplog
):
    """The same as SQLite sees a read-only directory, for root too: the database opened
    read-only (``mode=ro``), through diskcache's own code path."""
    import diskcache.core

    real = diskcache.core.sqlite3.connect
    monkeypatch.setattr(
        diskcache.core.sqlite3, "connect",
        lambda path, **kw: real(f"file:{path}?mode=ro", uri=True, **kw),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        cache = ResultCache(tmp_path, size_limit_bytes=1 << 20, memory_limit_bytes=1 << 20)
    _assert_memory_only(cache, tmp_path, caplog.text)


def test_an_engine_on_an_unusable_cache_dir_still_serves(tiny_model_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    eng = Engine(EngineSettings(model=str(tiny_model_dir), cache_dir=blocker / "cache"))
    try:
        with TestClient(create_app(eng)) as api:
            r = api.post("/analysis/predictions", json={"prompt": "Once upon a", "params": {}})
            assert r.status_code == 200
            stats = api.get("/cache/stats").json()
            assert str(blocker / "cache") in stats["disk_error"] and stats["graphs_bytes"] is None
            r = api.get("/graphs")
            assert r.status_code == 503 and str(blocker / "cache") in r.json()["error"]["message"]
    finally:
        eng.close()


def test_the_sidebar_shows_each_limit(api):
    from components.shell import cache_summary

    stats = api.get("/cache/stats").json()
    line = cache_summary(stats)
    for key in ("memory_limit_bytes", "disk_limit_bytes", "graphs_limit_bytes"):
        assert f"of {stats[key] / 1e6:.1f} MB" in line, key
