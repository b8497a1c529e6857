"""Saved graphs on disk, in circuit-tracer's own formats.

One folder (``<cache_dir>/graphs`` unless set), laid out as circuit-tracer's local viewer
serves it, so ``circuit_tracer.frontend.local_server.serve(data_dir=<folder>)`` opens every
graph here and a ``<slug>.json`` uploads to Neuronpedia unchanged:

- ``<slug>.json``: the pruned graph (``create_graph_files``): metadata, qParams, nodes, links;
- ``graph-metadata.json``: circuit-tracer's index of the transcoder graphs in the folder;
- ``<slug>.pt``: the unpruned ``Graph`` (``Graph.to_pt``; reload with ``Graph.from_pt``);
- ``<slug>.info.json``: Interpscope's record (``GraphInfo``): model, token ids, parameters.

A slug is ``<model>-<kind>-<hash of fingerprint, token ids, parameters>``: the same request
finds its saved graph instead of recomputing it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path

from engine.errors import EngineError
from engine.graphs.schemas import GraphInfo, QParamsUpdate

INDEX = "graph-metadata.json"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,120}$")


def make_slug(model: str, kind: str, fingerprint: str, token_ids: list[int], params: dict) -> str:
    blob = json.dumps([fingerprint, token_ids, kind, params], sort_keys=True).encode()
    name = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40] or "model"
    return f"{name}-{kind}-{hashlib.sha256(blob).hexdigest()[:12]}"


class GraphStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()  # create_graph_files wants an absolute path
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _path(self, slug: str, suffix: str) -> Path:
        if not SLUG.match(slug):
            raise EngineError(422, "bad_graph_id", f"{slug!r} is not a graph id.")
        return self.root / f"{slug}{suffix}"

    def exists(self, slug: str) -> bool:
        return self._path(slug, ".info.json").is_file() and self._path(slug, ".json").is_file()

    def info(self, slug: str) -> GraphInfo:
        path = self._path(slug, ".info.json")
        if not path.is_file():
            raise EngineError(404, "unknown_graph", f"No saved graph {slug!r} (deleted?).")
        return GraphInfo.model_validate_json(path.read_text())

    def write_info(self, info: GraphInfo) -> None:
        self._path(info.slug, ".info.json").write_text(info.model_dump_json(indent=1))

    def graph_json(self, slug: str) -> dict:
        self.info(slug)
        return self.graph_json_unchecked(slug)

    def graph_json_unchecked(self, slug: str) -> dict:
        """The graph file, before its info record exists (while saving it)."""
        return json.loads(self._path(slug, ".json").read_text())

    def write_graph_json(self, slug: str, doc: dict) -> None:
        """A graph file written by Interpscope (component graphs), same schema."""
        self._path(slug, ".json").write_text(json.dumps(doc, indent=2))

    def json_path(self, slug: str) -> Path:
        return self._path(slug, ".json")

    def pt_path(self, slug: str) -> Path:
        return self._path(slug, ".pt")

    def list(self, fingerprint: str | None = None) -> list[GraphInfo]:
        infos = []
        for path in self.root.glob("*.info.json"):
            try:
                info = GraphInfo.model_validate_json(path.read_text())
            except ValueError:
                continue  # a half-written or foreign file
            if fingerprint is None or info.fingerprint == fingerprint:
                infos.append(info)
        return sorted(infos, key=lambda i: i.created, reverse=True)

    def set_qparams(self, slug: str, q: QParamsUpdate) -> dict:
        """Write pinned ids, supernodes and the clicked node into the graph file's qParams."""
        with self._lock:
            doc = self.graph_json(slug)
            ids = {n["node_id"] for n in doc["nodes"]}
            unknown = [i for i in q.pinnedIds if i not in ids]
            unknown += [i for sn in q.supernodes for i in sn[1:] if i not in ids]
            if unknown:
                raise EngineError(422, "unknown_nodes", f"Not nodes of graph {slug}: {unknown[:5]}")
            if any(len(sn) < 2 or not sn[0].strip() for sn in q.supernodes):
                raise EngineError(
                    422, "bad_supernode", "A supernode is [name, node_id, ...] with a name."
                )
            doc["qParams"].update(q.model_dump())
            self._path(slug, ".json").write_text(json.dumps(doc, indent=2))
            return doc["qParams"]

    def delete(self, slug: str) -> None:
        with self._lock:
            self.info(slug)
            for suffix in (".json", ".pt", ".info.json"):
                self._path(slug, suffix).unlink(missing_ok=True)
            index = self.root / INDEX
            if index.is_file():
                meta = json.loads(index.read_text())
                meta["graphs"] = [g for g in meta.get("graphs", []) if g.get("slug") != slug]
                index.write_text(json.dumps(meta, indent=2))
