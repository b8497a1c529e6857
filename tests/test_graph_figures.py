"""The graph figure from circuit-tracer's graph JSON: placement, pruning, pins, supernodes.

The document is a real one: ``create_graph_files`` run on a graph that circuit-tracer's
``attribute`` made on the demo organism, so the figure code reads the schema it will meet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from components import graph_figures as gf
from components.graph_panel import decode_supernodes, encode_supernodes, steer_url

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "organism"


@pytest.fixture(scope="module")
def doc(tmp_path_factory) -> dict:
    if not (ASSETS / "transcoders" / "config.yaml").is_file():
        pytest.skip("organism not shipped")
    from circuit_tracer import attribute
    from circuit_tracer.utils.create_graph_files import create_graph_files

    from engine.graphs.replacement import build_replacement_model, load_transcoder_set
    from engine.loading import load_model

    lm = load_model(str(ASSETS))
    rm = build_replacement_model(lm.model, load_transcoder_set(ASSETS / "transcoders"))
    tok = lm.model.tokenizer
    ids = torch.tensor([tok.bos_token_id, *tok.encode("The capital of Spain is")])
    graph = attribute(ids, rm, max_n_logits=3, batch_size=64, max_feature_nodes=64)
    out = tmp_path_factory.mktemp("g")
    create_graph_files(graph, "g", str(out), node_threshold=0.8, edge_threshold=0.98)
    return json.loads((out / "g.json").read_text())


def test_nodes_sit_at_position_and_layer(doc) -> None:
    xy = gf.positions(doc["nodes"])
    n_layers = int(max(n["layer"] for n in doc["nodes"] if n["feature_type"] == "logit")) - 1
    for n in doc["nodes"]:
        x, y = xy[n["node_id"]]
        assert abs(x - n["ctx_idx"]) < 0.5
        if n["feature_type"] == "embedding":
            assert y == 0
        elif n["feature_type"] == "logit":
            assert y == n_layers + 1
        else:
            assert y == int(n["layer"]) + 1
    assert len(set(xy.values())) == len(xy)  # nodes sharing a cell are spread out


def test_threshold_prunes_by_influence_and_keeps_pins(doc) -> None:
    latents = [n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder"]
    weakest = max(latents, key=lambda n: n["influence"])
    shown = gf.visible(doc, 0.3, pinned=[], max_links=50)
    assert all(n["influence"] <= 0.3 for n in shown.nodes if n["feature_type"] not in gf.ALWAYS)
    assert weakest not in shown.nodes
    assert len(shown.links) <= 50
    ids = {n["node_id"] for n in shown.nodes}
    assert all(lk["source"] in ids and lk["target"] in ids for lk in shown.links)
    pinned = gf.visible(doc, 0.3, pinned=[weakest["node_id"]], max_links=50)
    assert weakest in pinned.nodes
    only = gf.visible(doc, 1.0, pinned=[weakest["node_id"]], max_links=50, only_pinned=True)
    assert only.nodes == [weakest]


def test_figure_has_clickable_nodes_by_kind(doc) -> None:
    first = next(n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder")
    fig = gf.graph_figure(doc, threshold=1.0, selected=first["node_id"],
                          supernodes=[["group", first["node_id"]]])  # fmt: skip
    marker_traces = {t.name: t for t in fig.data if t.mode == "markers"}
    assert {"latent", "embedding", "logit"} <= set(marker_traces)
    ids = [i for t in marker_traces.values() for i in t.customdata]
    assert sorted(ids) == sorted(n["node_id"] for n in doc["nodes"])
    lines = [t for t in fig.data if t.mode == "lines"]
    assert {t.line.color for t in lines} <= {gf.POS_EDGE, gf.NEG_EDGE} and lines
    assert [a.text for a in fig.layout.annotations] == ["<b>group</b>"]
    tokens = doc["metadata"]["prompt_tokens"]
    assert len(fig.layout.xaxis.ticktext) == len(tokens)


def test_sizes_grow_with_influence() -> None:
    def node(infl):
        return {"feature_type": "cross layer transcoder", "influence": infl}

    assert gf.size(node(0.1)) > gf.size(node(0.5)) > gf.size(node(0.9))


def test_supernodes_round_trip_through_the_url() -> None:
    groups = [["say Paris", "3_414_5", "2_10_5"], ["France", "0_7_4"]]
    assert decode_supernodes(encode_supernodes(groups)) == groups
    assert steer_url(3, 414, "The capital") == (
        "steering?add_latent=transcoder%3A3%3A414&prompt=The+capital"
    )
