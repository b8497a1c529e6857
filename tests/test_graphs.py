"""Attribution graphs on the demo organism, checked against circuit-tracer and interventions.

Ground truth: a graph's edge from a latent to the target logit is the latent's direct effect
on that logit (demeaned, as circuit-tracer's logit nodes are); zeroing the latent in
circuit-tracer's replacement model with attention, layer norms and the other layers frozen
(``feature_intervention(..., constrained_layers=all layers)``) must move the logit by exactly
minus that edge. Files must reload through circuit-tracer's own loaders.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import yaml
from circuit_tracer import attribute
from circuit_tracer.frontend.graph_models import Model
from circuit_tracer.graph import Graph
from fastapi.testclient import TestClient

from engine.api import create_app
from engine.graphs import cost as costs
from engine.graphs.replacement import build_replacement_model, load_transcoder_set
from engine.graphs.schemas import GraphParams
from engine.graphs.service import graph_service
from engine.jobs import Job, JobContext
from engine.service import Engine
from organism.latent_examples import read_examples

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "organism"
pytestmark = pytest.mark.skipif(
    not (ASSETS / "transcoders" / "config.yaml").is_file(), reason="organism not shipped"
)
FACT = "The capital of France is"
IOI = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def api(org):
    with TestClient(create_app(org)) as client:
        yield client


def run_job(engine: Engine, params: dict, timeout: float = 300) -> Job:
    job = engine.start_job("attribution_graph", params)
    deadline = time.monotonic() + timeout
    while not job.status.finished and time.monotonic() < deadline:
        time.sleep(0.05)
    return job


@pytest.fixture(scope="module")
def full_graphs(org) -> dict[str, tuple[dict, Graph]]:
    """One graph per prompt with every active latent attributed (no node budget cut)."""
    out = {}
    for prompt in (FACT, IOI):
        job = run_job(org, {"prompt": prompt, "max_feature_nodes": 100_000, "max_n_logits": 1,
                            "batch_size": 256})  # fmt: skip
        assert job.status == "done", job.error
        store = graph_service(org).store
        out[prompt] = (job.result, Graph.from_pt(str(store.pt_path(job.result["slug"]))))
    return out


def test_capability_follows_the_transcoders(org, engine) -> None:
    assert org.capabilities().features["transcoders"].available
    tiny = engine.capabilities().features["transcoders"]  # the tiny random model has none
    assert not tiny.available and "no transcoders" in tiny.reason


@pytest.mark.parametrize("prompt", [FACT, IOI])
def test_top_latents_move_the_logit_as_the_graph_says(org, full_graphs, prompt) -> None:
    info, g = full_graphs[prompt]
    rm = graph_service(org).replacements.get(org.require_model())
    ids = torch.tensor(info["token_ids"])
    n_feat = len(g.selected_features)
    target = g.logit_targets[0].vocab_idx
    assert target == int(org.require_model().model(ids[None])[0, -1].argmax())  # top logit

    def metric(logits) -> float:
        last = logits[0, -1] if logits.ndim == 3 else logits[-1]
        return float((last[target] - last.mean()).detach())  # circuit-tracer's demeaned logit

    base = metric(rm(ids[None]))
    direct = g.adjacency_matrix[-1, :n_feat]  # edges into the (only) logit node
    top = direct.abs().argsort(descending=True)[:4].tolist()
    every = range(rm.cfg.n_layers)
    joint = []
    for i in top:
        layer, pos, feat = g.active_features[g.selected_features[i]].tolist()
        joint.append((layer, pos, feat, 0))
        logits, _ = rm.feature_intervention(ids, [joint[-1]], constrained_layers=every)
        moved = metric(logits) - base
        assert moved == pytest.approx(-float(direct[i]), rel=0.02, abs=1e-3)
    logits, _ = rm.feature_intervention(ids, joint, constrained_layers=every)
    assert metric(logits) - base == pytest.approx(-float(direct[top].sum()), rel=0.02, abs=1e-3)


def test_engine_graph_equals_circuit_tracer_called_directly(org, full_graphs) -> None:
    info, g = full_graphs[FACT]
    lm = org.require_model()
    rm = build_replacement_model(lm.model, load_transcoder_set(ASSETS / "transcoders"))
    direct = attribute(torch.tensor(info["token_ids"]), rm, max_n_logits=1, batch_size=256)
    assert torch.equal(direct.active_features, g.active_features)
    assert torch.allclose(direct.adjacency_matrix, g.adjacency_matrix, atol=1e-5)


def test_saved_graph_reloads_through_circuit_tracer(org, full_graphs, tmp_path) -> None:
    from circuit_tracer.utils.create_graph_files import create_graph_files

    info, g = full_graphs[FACT]
    store = graph_service(org).store
    doc = json.loads(store.json_path(info["slug"]).read_text())
    model = Model.model_validate(doc)  # the schema circuit-tracer's viewer and Neuronpedia read
    scan = yaml.safe_load((ASSETS / "transcoders" / "config.yaml").read_text())["scan"]
    assert model.metadata.slug == info["slug"] and model.metadata.scan == scan
    index = json.loads((store.root / "graph-metadata.json").read_text())
    assert info["slug"] in [x["slug"] for x in index["graphs"]]
    create_graph_files(Graph.from_pt(str(store.pt_path(info["slug"]))), "again", str(tmp_path))
    again = json.loads((tmp_path / "again.json").read_text())
    fixed = [  # circuit-tracer 0.5.0 names error nodes 0_<layer>_<pos>; the saved file, as its fix
        f"{n['layer']}_-1_{n['ctx_idx']}" if n["feature_type"] == "mlp reconstruction error"
        else n["node_id"] for n in again["nodes"]
    ]  # fmt: skip
    ids = [n["node_id"] for n in doc["nodes"]]
    assert fixed == ids and len(set(ids)) == len(ids)
    assert {x for link in doc["links"] for x in (link["source"], link["target"])} <= set(ids)
    assert len(again["links"]) == len(doc["links"]) == info["n_links"]
    latent = next(n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder")
    layer, index = int(latent["layer"]), int(latent["node_id"].split("_")[1])
    shipped = read_examples(ASSETS / "transcoders" / f"layer_{layer}.latents.json.gz")
    assert latent["clerp"] == shipped["latents"][index]["label"]  # labels ride along as clerps


def test_cost_counts_what_attribute_finds(org, full_graphs) -> None:
    info, g = full_graphs[IOI]
    cost = graph_service(org).cost(GraphParams(prompt=IOI, max_feature_nodes=50))
    assert cost.active_latents == g.active_features.shape[0]
    assert cost.latent_nodes == 50 and cost.n_tokens == len(info["token_ids"])
    assert cost.fits and 0 < cost.memory_bytes < cost.available_bytes


def test_what_cannot_fit_is_refused_with_a_reason(org, api, monkeypatch) -> None:
    monkeypatch.setattr(costs, "available_bytes", lambda device: 1 << 20)
    body = {"prompt": "The capital of Spain is", "max_feature_nodes": 64}
    cost = api.post("/graphs/cost", json=body).json()
    assert not cost["fits"] and "free" in cost["reason"] and "node budget" in cost["reason"]
    job = run_job(org, body)
    assert job.status == "failed" and job.error == cost["reason"]


def test_cancel_stops_a_running_job(org) -> None:
    params = {"prompt": "Mary was happy. John was sad. Mary", "max_feature_nodes": 100_000,
              "batch_size": 1}  # fmt: skip
    job = org.start_job("attribution_graph", params)
    deadline = time.monotonic() + 120
    while job.progress < 0.2 and not job.status.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.status == "running" and "backward passes" in job.message
    assert job.info().eta_s is not None
    org.jobs.cancel(job.id)
    while not job.status.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.status == "cancelled" and job.progress < 0.9
    slug = graph_service(org).slug(GraphParams(**params), org.tokenize(params["prompt"])[0])
    assert not graph_service(org).store.exists(slug)
    rm = graph_service(org).replacements.get(org.require_model())
    assert "setup_attribution" not in rm.__dict__  # the progress wrappers are gone
    ids = torch.tensor(org.tokenize(FACT)[0])
    assert torch.allclose(rm(ids[None]), org.require_model().model(ids[None]), atol=1e-4)


def test_progress_reports_real_fractions(org) -> None:
    seen: list[tuple[float, str]] = []
    ctx = JobContext(Job("j", "attribution_graph", fn=None))  # type: ignore[arg-type]
    ctx.progress = lambda f, m="": seen.append((f, m))  # type: ignore[method-assign]
    graph_service(org).attribute(ctx, GraphParams(prompt="Paris is the capital of", batch_size=8,
                                                  max_feature_nodes=40))  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and len(fractions) >= 6
    batches = [f for f, m in seen if m.startswith("backward passes")]
    assert len(batches) >= 40 // 8 and batches[-1] - batches[0] > 0.5  # one report per batch
    assert seen[-1][1].startswith("pruning")


def test_list_qparams_and_delete_over_http(org, api, full_graphs) -> None:
    slug = full_graphs[FACT][0]["slug"]
    assert slug in [g["slug"] for g in api.get("/graphs").json()]
    doc = api.get(f"/graphs/{slug}").json()
    ids = [n["node_id"] for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder"]
    q = {"pinnedIds": ids[:3], "supernodes": [["capital", ids[0], ids[1]]], "clickedId": ids[0]}
    assert api.put(f"/graphs/{slug}/qparams", json=q).status_code == 200
    saved = api.get(f"/graphs/{slug}").json()["qParams"]
    assert saved["pinnedIds"] == ids[:3] and saved["supernodes"] == [["capital", ids[0], ids[1]]]
    bad = api.put(f"/graphs/{slug}/qparams", json={"pinnedIds": ["nope"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_nodes"
    other = run_job(org, {"prompt": "The capital of Italy is", "max_feature_nodes": 16}).result
    assert api.delete(f"/graphs/{other['slug']}").status_code == 200
    assert api.get(f"/graphs/{other['slug']}").status_code == 404
    index = json.loads((graph_service(org).store.root / "graph-metadata.json").read_text())
    assert other["slug"] not in [x["slug"] for x in index["graphs"]]
    assert api.get("/graphs/..%2Fsecrets").status_code in (404, 422)


def test_same_request_reuses_the_saved_graph(org, full_graphs) -> None:
    info = full_graphs[FACT][0]
    again = run_job(org, {"prompt": FACT, "max_feature_nodes": 100_000, "max_n_logits": 1,
                          "batch_size": 256})  # fmt: skip
    same = {"qparams_version": info["qparams_version"]}  # pin edits since bump the version
    assert again.result | same == info


def test_wait_answers_when_the_job_is_done(api) -> None:
    job = api.post("/jobs/attribution_graph", json={"prompt": "Paris is the capital of",
                                                    "max_feature_nodes": 8}).json()  # fmt: skip
    state = api.get(f"/graphs/jobs/{job['id']}/wait?timeout_s=120").json()
    assert state["job"]["status"] == "done" and state["result"]["slug"].startswith("organism-")
    assert api.get("/graphs/jobs/nope/wait").status_code == 404


def test_error_nodes_never_share_a_latents_id() -> None:
    """circuit-tracer 0.5.0 gives the layer-2 error node at position 3 the id of layer-0
    latent #2 at position 3; the saved files name error nodes apart."""
    from circuit_tracer.frontend.graph_models import Node

    from engine.graphs.files import fix_error_node_ids

    nodes = {0: Node.feature_node(0, 3, 2), 1: Node.error_node(2, 3)}
    assert nodes[0].node_id == nodes[1].node_id  # the upstream collision
    fix_error_node_ids(nodes)
    assert nodes[0].node_id == "0_2_3" and nodes[1].node_id == "2_-1_3"


def test_memory_estimate_leaves_out_transcoders_already_loaded(tmp_path) -> None:
    """The latent panels and the replacement model share one transcoder set: once the panels
    have loaded it, building the replacement model adds only the model copy."""
    from engine import saes
    from engine.settings import EngineSettings

    eng = Engine(EngineSettings(model=str(ASSETS), cache_dir=tmp_path))
    try:
        svc = graph_service(eng)
        before = svc._unbuilt_weights()
        saes.for_model(eng.lm).transcoder(0)  # a latent panel opens a transcoder latent
        files = sum(f.stat().st_size for f in (ASSETS / "transcoders").glob("*.safetensors"))
        assert before - svc._unbuilt_weights() == files > 0
    finally:
        eng.close()
