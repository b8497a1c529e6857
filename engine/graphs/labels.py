"""Latent labels for a graph file's ``clerp`` (the explanation circuit-tracer's viewer and
Neuronpedia show), from the examples file shipped beside each layer's transcoder
(``layer_<L>.latents.json.gz``, ``interpscope-latent-examples/1``), when there is one."""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

from engine.graphs.files import Labeler


@lru_cache(maxsize=16)
def _labels(path: str, mtime: float) -> tuple[str, ...]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return tuple(rec.get("label") or "" for rec in json.load(f)["latents"])


def layer_labels(tc_dir: Path, layer: int) -> tuple[str, ...] | None:
    path = tc_dir / f"layer_{layer}.latents.json.gz"
    return _labels(str(path), path.stat().st_mtime) if path.is_file() else None


def shipped_labeler(tc_dir: Path) -> Labeler:
    """(layer, index) -> the shipped label, or None."""

    def label(layer: int, index: int) -> str | None:
        labels = layer_labels(tc_dir, layer)
        return labels[index] if labels and index < len(labels) else None

    return label
