"""Component graphs (heads and MLPs) from attribution patching, against real patching.

Ground truth: activation patching with TransformerLens hooks. Patching one component's
output from the corrupted run into the clean run changes the metric by some amount; the
attribution-patching score is its first-order estimate, so across components the two must
agree in sign for the big ones and correlate. Edge scores into the logit node must add up
to the node scores of the components that write only to the logits (last layer's MLP).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.graphs.patching import component_graph, scores
from engine.graphs.schemas import ComponentGraphParams

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "organism"
CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPT = "When Mary and John went to the store, Mary gave a drink to"


def patched_metric(model, clean, corrupt, hook: str, head: int | None, target, baseline) -> float:
    _, corr = model.run_with_cache(torch.tensor([corrupt]), names_filter=lambda n: n == hook)

    def patch(act, hook):
        if head is None:
            return corr[hook.name]
        act = act.clone()
        act[:, :, head] = corr[hook.name][:, :, head]
        return act

    logits = model.run_with_hooks(torch.tensor([clean]), fwd_hooks=[(hook, patch)])
    return float(logits[0, -1, target] - logits[0, -1, baseline])


def test_scores_track_real_activation_patching(org) -> None:
    lm = org.require_model()
    model, tok = lm.model, lm.model.tokenizer
    clean, corrupt = org.tokenize(CLEAN)[0], org.tokenize(CORRUPT)[0]
    target, baseline = tok.encode(" Mary")[0], tok.encode(" John")[0]
    metric, node, _ = scores(model, clean, corrupt, target, baseline)
    logits = model(torch.tensor([clean]))[0, -1].detach()
    assert metric == pytest.approx(float(logits[target] - logits[baseline]), abs=1e-4)
    est, real = [], []
    for layer in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            hook = f"blocks.{layer}.attn.hook_z"
            real.append(metric - patched_metric(model, clean, corrupt, hook, h, target, baseline))
            est.append(node[f"A{layer}.{h}"])
        hook = f"blocks.{layer}.hook_mlp_out"
        real.append(metric - patched_metric(model, clean, corrupt, hook, None, target, baseline))
        est.append(node[f"M{layer}"])
    est_t, real_t = torch.tensor(est), torch.tensor(real)
    assert torch.corrcoef(torch.stack([est_t, real_t]))[0, 1] > 0.7
    big = real_t.abs() > 0.25 * real_t.abs().max()
    assert (est_t[big].sign() == real_t[big].sign()).float().mean() >= 0.75


def test_last_mlp_writes_only_to_the_logit(org) -> None:
    lm = org.require_model()
    model, tok = lm.model, lm.model.tokenizer
    clean, corrupt = org.tokenize(CLEAN)[0], org.tokenize(CORRUPT)[0]
    _, node, edge = scores(model, clean, corrupt, tok.encode(" Mary")[0], tok.encode(" John")[0])
    last = f"M{model.cfg.n_layers - 1}"
    readers = [r for (w, r) in edge if w == last]
    assert readers == ["L"]
    assert edge[(last, "L")] == pytest.approx(node[last], rel=1e-3, abs=1e-4)


def test_component_graph_is_saved_in_the_graph_schema(org) -> None:
    from circuit_tracer.frontend.graph_models import Model

    svc = org.graphs
    info = svc.component_graph(
        ComponentGraphParams(prompt=CLEAN, corrupted=CORRUPT, target=" Mary", baseline=" John")
    )
    doc = svc.store.graph_json(info.slug)
    Model.model_validate(doc)
    cfg = org.require_model().model.cfg
    assert len(doc["nodes"]) == cfg.n_layers * (cfg.n_heads + 1) + 2
    ids = {n["node_id"] for n in doc["nodes"]}
    assert all(link["source"] in ids and link["target"] in ids for link in doc["links"])
    assert info.slug in [g.slug for g in svc.store.list()]


def test_component_graph_works_on_any_model(engine) -> None:
    """The tiny random GPT-2 has no transcoders; the component graph still builds."""
    model = engine.require_model().model
    clean = engine.tokenize("When Mary and John went")[0]
    corrupt = clean[:2] + [clean[3], clean[2]] + clean[4:]
    doc = component_graph(model, clean, corrupt, 5, None, slug="tiny")
    assert len(doc["nodes"]) == model.cfg.n_layers * (model.cfg.n_heads + 1) + 2


def test_length_mismatch_is_refused(org) -> None:
    from engine.errors import EngineError

    with pytest.raises(EngineError) as e:
        org.graphs.component_graph(
            ComponentGraphParams(prompt=CLEAN, corrupted="Mary gave", target=" Mary")
        )
    assert e.value.code == "length_mismatch"
