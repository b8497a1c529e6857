"""Latent labels into a graph file's ``clerp`` (the explanation circuit-tracer's viewer and
Neuronpedia show), from the examples file shipped beside each layer's transcoder
(``layer_<L>.latents.json.gz``, ``interpscope-latent-examples/1``), when there is one."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=16)
def _labels(path: str, mtime: float) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [rec.get("label") or "" for rec in json.load(f)["latents"]]


def layer_labels(tc_dir: Path, layer: int) -> list[str] | None:
    path = tc_dir / f"layer_{layer}.latents.json.gz"
    return _labels(str(path), path.stat().st_mtime) if path.is_file() else None


def label_nodes(doc: dict, tc_dir: Path) -> int:
    """Set the clerp of every latent node that has a shipped label; how many were set."""
    n = 0
    for node in doc["nodes"]:
        if node["feature_type"] != "cross layer transcoder" or node.get("clerp"):
            continue
        labels = layer_labels(tc_dir, int(node["layer"]))
        index = int(node["node_id"].split("_")[1])
        if labels and index < len(labels) and labels[index]:
            node["clerp"] = labels[index]
            n += 1
    return n
