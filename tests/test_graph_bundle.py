"""The attribution graph view's figure bundle: its arrays are what ``graph_figure`` draws, and
its snippet, run on its own against the organism, rebuilds the graph (circuit-tracer for a
transcoder graph, TransformerLens attribution patching for a component graph) and recomputes
them."""

from __future__ import annotations

import inspect
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from components import bundles
from components import graph_figures as gf
from components.graph_snippets import KINDS, graph_bundle
from engine.graphs import files, patching, replacement
from engine.graphs.schemas import ComponentGraphParams, GraphParams
from engine.jobs import Job, JobContext
from engine.launcher import REPO_ROOT
from engine.service import Engine

ASSETS = REPO_ROOT / "assets" / "organism"
pytestmark = pytest.mark.skipif(
    not (ASSETS / "transcoders" / "config.yaml").is_file(), reason="organism not shipped"
)
FACT = "The capital of France is"
CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"


@pytest.fixture(scope="module")
def fact_graph(org) -> tuple[dict, dict]:
    """(record, graph file) of a small graph made through the engine's graph service."""
    ctx = JobContext(Job("j", "attribution_graph", fn=None))  # type: ignore[arg-type]
    ctx.progress = lambda f, m="": None  # type: ignore[method-assign]
    svc = org.graphs
    info = svc.attribute(ctx, GraphParams(prompt=FACT, max_feature_nodes=48, batch_size=32))
    return info, svc.store.graph_json(info["slug"])


def run_snippet(spec: bundles.BundleSpec, engine: Engine, prompt: str, tmp_path: Path) -> dict:
    """Run the snippet the bundle would hold as a script; its globals."""
    info = engine.model_info().model_dump()
    code = bundles.snippet(bundles.ModelRef.from_info(info, REPO_ROOT), prompt, spec, "test")
    path = tmp_path / "snippet.py"
    path.write_text(code)
    grad = torch.is_grad_enabled()
    try:
        return runpy.run_path(str(path), run_name="snippet")
    finally:
        torch.set_grad_enabled(grad)


def assert_recomputes(spec: bundles.BundleSpec, out: dict) -> None:
    assert out["node_ids"] == spec.labels["node"]
    for key, array in spec.data.items():
        want = np.array(array.values, dtype=float)  # None (undefined) -> nan
        got = np.array(out["data"][key], dtype=float)
        assert got.shape == want.shape, key
        assert np.allclose(got, want, rtol=1e-4, atol=1e-6, equal_nan=True), key


def drawn_ids(fig) -> list[str]:
    return [i for t in fig.data if t.mode == "markers" for i in t.customdata]


def test_bundle_holds_what_the_figure_draws(fact_graph) -> None:
    info, doc = fact_graph
    latents = [n["node_id"] for n in doc["nodes"] if n["feature_type"] == KINDS[0]]
    weakest = max(
        (n for n in doc["nodes"] if n["feature_type"] == KINDS[0]), key=lambda n: n["influence"]
    )["node_id"]
    model = {"name": "organism", "source": "local"}
    for threshold, max_links, pins, only in [(0.8, 300, [], False), (0.5, 20, [weakest], False),
                                             (1.0, 2000, latents[:3], True)]:  # fmt: skip
        kw = dict(threshold=threshold, max_links=max_links, pinned=pins, only_pinned=only)
        fig = gf.graph_figure(doc, **kw)
        spec = graph_bundle(doc, info, model=model, **kw)
        assert sorted(spec.labels["node"]) == sorted(drawn_ids(fig))
        nodes, links = spec.data["nodes"].values, spec.data["links"].values
        n_lines = sum(len(t.x) // 3 for t in fig.data if t.mode == "lines")
        assert len(links) == n_lines and f"{len(nodes)} nodes, {len(links)} links" in (
            fig.layout.title.subtitle.text
        )
        by_id = {n["node_id"]: n for n in doc["nodes"]}
        for nid, row in zip(spec.labels["node"], nodes, strict=True):
            n = by_id[nid]
            assert KINDS[row[0]] == n["feature_type"] and row[2] == n["ctx_idx"]
            assert row[4] == n["influence"] and row[5] == n["activation"]
        for label, (s, t, w) in zip(spec.labels["link"], links, strict=True):
            assert label == f"{spec.labels['node'][s]} -> {spec.labels['node'][t]}"
            assert any(lk["weight"] == w for lk in doc["links"])
    assert graph_bundle(doc, info, threshold=0.8, max_links=300, model={"name": "x"}) is None


def test_a_published_transcoder_snippet_loads_them_with_from_pretrained(fact_graph) -> None:
    info, doc = fact_graph
    model = {"name": "google/gemma-2-2b", "ref": "google/gemma-2-2b", "source": "hub",
             "dtype": "bfloat16"}  # fmt: skip
    spec = graph_bundle(doc, info, threshold=0.8, max_links=300, model=model)
    code = bundles.snippet(bundles.ModelRef.from_info(model), FACT, spec, "t")
    assert "ReplacementModel.from_pretrained(\n    MODEL, 'gemma'" in code
    assert "dtype=torch.bfloat16" in code and "load_transcoders" not in code
    compile(code, "snippet.py", "exec")


def test_transcoder_graph_snippet_rebuilds_it_with_circuit_tracer(org, fact_graph, tmp_path,
                                                                  monkeypatch) -> None:  # fmt: skip
    monkeypatch.chdir(REPO_ROOT)  # the snippet names the model directory relative to here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info, doc = fact_graph
    spec = graph_bundle(doc, info, threshold=0.6, max_links=40,
                        model=org.model_info().model_dump())  # fmt: skip
    assert "circuit_tracer" in spec.packages and spec.data["links"].values
    assert {KINDS[r[0]] for r in spec.data["nodes"].values} >= {"embedding", "logit", KINDS[0]}
    code = bundles.snippet(bundles.ModelRef.from_info(org.model_info().model_dump(), REPO_ROOT),
                           FACT, spec, "t")  # fmt: skip
    assert "MODEL = 'assets/organism'" in code and "ReplacementModel.from_pretrained" not in code
    for fn in (
        replacement.load_transcoder_set,
        replacement.build_replacement_model,
        files.pruned_nodes_and_links,
    ):
        assert inspect.getsource(fn) in code  # the engine's own, not a copy
    assert_recomputes(spec, run_snippet(spec, org, FACT, tmp_path))


def test_component_graph_snippet_recomputes_attribution_patching(org, tmp_path,
                                                                 monkeypatch) -> None:  # fmt: skip
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    svc = org.graphs
    info = svc.component_graph(
        ComponentGraphParams(prompt=CLEAN, corrupted=CORRUPT, target=" Mary", baseline=" John")
    ).model_dump(mode="json")
    doc = svc.store.graph_json(info["slug"])
    spec = graph_bundle(doc, info, threshold=0.7, max_links=60,
                        model=org.model_info().model_dump())  # fmt: skip
    assert spec.packages == ("transformer_lens",) and spec.data["links"].values
    assert {KINDS[r[0]] for r in spec.data["nodes"].values} >= {"attention head", "logit"}
    for fn in (patching.scores, patching.component_graph):
        assert inspect.getsource(fn) in spec.code  # the engine's own, not a copy
    out = run_snippet(spec, org, CLEAN, tmp_path)
    assert_recomputes(spec, out)


def test_a_wrong_graph_snippet_is_caught(org, fact_graph, tmp_path, monkeypatch) -> None:
    """The comparison is not vacuous: other attribution parameters give other arrays."""
    monkeypatch.chdir(REPO_ROOT)
    info, doc = fact_graph
    spec = graph_bundle(doc, info, threshold=0.6, max_links=40,
                        model=org.model_info().model_dump())  # fmt: skip
    spec.code = spec.code.replace("max_feature_nodes=48", "max_feature_nodes=8")
    with pytest.raises(AssertionError):
        assert_recomputes(spec, run_snippet(spec, org, FACT, tmp_path))
