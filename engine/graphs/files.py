"""Write a graph's files the way ``create_graph_files`` does, with two changes.

circuit-tracer's ``create_graph_files`` reloads the tokenizer from ``cfg.tokenizer_name``
(which must then be a local path or a hub name) and leaves ``clerp`` empty. This runs the
same steps with its own building blocks (``prune_graph``, ``create_nodes``,
``create_used_nodes_and_edges``, ``build_model``, ``add_graph_metadata``), with the loaded
model's tokenizer and each latent's label as its ``clerp``, so the file is circuit-tracer's
schema, written once.

One more change: circuit-tracer 0.5.0 names an error node ``0_<layer>_<pos>``, the id of the
layer-0 latent whose index is that layer at that position, so the two collide (one overwrites
the other wherever nodes are keyed by id, links included: circuit-tracer issue #78). Error nodes
here get ``<layer>_-1_<pos>``, the id its fix (PR #102) gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from engine.atomic import atomic_write

Labeler = Callable[[int, int], str | None]  # (layer, latent index) -> label


def fix_error_node_ids(nodes: dict) -> None:
    """Error nodes' ids as ``<layer>_-1_<pos>`` (never a latent's id), in place."""
    for node in nodes.values():
        if node.feature_type == "mlp reconstruction error":
            node.node_id = f"{node.layer}_-1_{node.ctx_idx}"


def write_graph_files(
    graph,
    slug: str,
    root: Path,
    *,
    tokenizer,
    scan: str,
    node_threshold: float,
    edge_threshold: float,
    labeler: Labeler | None = None,
) -> dict:
    """`root`/`slug`.json (written whole: engine/atomic.py); returns counts and the metadata
    for the folder's index (``GraphStore.index_add``)."""
    from circuit_tracer.graph import prune_graph
    from circuit_tracer.utils.create_graph_files import (
        build_model,
        create_nodes,
        create_used_nodes_and_edges,
    )

    graph.to("cuda" if torch.cuda.is_available() else "cpu")  # as create_graph_files does
    node_mask, edge_mask, scores = (
        t.cpu() for t in prune_graph(graph, node_threshold, edge_threshold)
    )
    graph.to("cpu")
    nodes = create_nodes(graph, node_mask, tokenizer, scores)
    fix_error_node_ids(nodes)
    used_nodes, used_edges = create_used_nodes_and_edges(graph, nodes, edge_mask)
    if labeler is not None:
        for node in used_nodes:
            if node.feature_type == "cross layer transcoder":
                node.clerp = labeler(int(node.layer), int(node.node_id.split("_")[1])) or ""
    model = build_model(graph, used_nodes, used_edges, slug, scan, node_threshold, tokenizer)
    atomic_write(Path(root) / f"{slug}.json", model.model_dump_json())
    return {
        "n_nodes": len(used_nodes),
        "n_links": len(used_edges),
        "metadata": model.metadata.model_dump(),
    }
