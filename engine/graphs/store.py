"""Saved graphs on disk, in circuit-tracer's own formats.

One folder (``<cache_dir>/graphs`` unless set), laid out as circuit-tracer's local viewer
serves it, so ``circuit_tracer.frontend.local_server.serve(data_dir=<folder>)`` opens every
graph here and a ``<slug>.json`` uploads to Neuronpedia unchanged:

- ``<slug>.json``: the pruned graph (``create_graph_files``): metadata, qParams, nodes, links;
- ``graph-metadata.json``: circuit-tracer's index of the transcoder graphs in the folder;
- ``<slug>.pt``: the unpruned ``Graph`` (``Graph.to_pt``; reload with ``Graph.from_pt``);
- ``<slug>.info.json``: Interpscope's record (``GraphInfo``): model, token ids, parameters,
  and the version of the qParams (each edit bumps it; an edit made on an older one is a 409).

A slug is ``<model>-<kind>-<hash of fingerprint, token ids, parameters>``: the same request
finds its saved graph instead of recomputing it.

Nothing here is rewritten in place: every file is written whole and renamed over the old one
(engine/atomic.py). The index is derived data: a missing or damaged one is rebuilt from the
graph files. A graph whose files are missing, empty or cut short is not listed and does not
count as saved, so asking for it again regenerates it. The folder is bounded in bytes
(``graphs_size_mb``): saving a graph deletes the oldest others until the folder fits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from engine.atomic import TEMP_PREFIX, atomic_write
from engine.errors import EngineError
from engine.graphs.schemas import GraphInfo, QParamsUpdate

log = logging.getLogger(__name__)
INDEX = "graph-metadata.json"
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,120}$")
SUFFIXES = (".json", ".pt", ".info.json")


def make_slug(model: str, kind: str, fingerprint: str, token_ids: list[int], params: dict) -> str:
    blob = json.dumps([fingerprint, token_ids, kind, params], sort_keys=True).encode()
    name = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40] or "model"
    return f"{name}-{kind}-{hashlib.sha256(blob).hexdigest()[:12]}"


def _looks_whole(path: Path) -> bool:
    """A JSON object file that is not empty and not cut short (cheap: its last byte)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(max(f.tell() - 64, 0))
            return f.read().rstrip().endswith(b"}")
    except OSError:
        return False


class GraphStore:
    def __init__(self, root: Path, *, size_limit_bytes: int | None = None):
        self.root = Path(root).resolve()  # create_graph_files wants an absolute path
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EngineError(
                503, "graphs_dir_unusable",
                f"The saved-graphs folder {self.root} cannot be created ({e}); set a writable "
                "cache directory (--cache-dir).",
            ) from None  # fmt: skip
        self.size_limit = size_limit_bytes
        self._lock = threading.RLock()

    def _path(self, slug: str, suffix: str) -> Path:
        if not SLUG.match(slug):
            raise EngineError(422, "bad_graph_id", f"{slug!r} is not a graph id.")
        return self.root / f"{slug}{suffix}"

    # --- reading -----------------------------------------------------------------------
    def _read_info(self, slug: str) -> GraphInfo | None:
        """The record of a graph whose files are whole, else None."""
        path = self._path(slug, ".info.json")
        try:
            info = GraphInfo.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            return None
        return info if _looks_whole(self._path(slug, ".json")) else None

    def exists(self, slug: str) -> bool:
        return self._read_info(slug) is not None

    def info(self, slug: str) -> GraphInfo:
        info = self._read_info(slug)
        if info is None:
            raise EngineError(404, "unknown_graph", f"No saved graph {slug!r} (deleted?).")
        return info

    def graph_bytes(self, slug: str) -> bytes:
        """The graph file as saved (read in one go: a concurrent save replaces, never cuts)."""
        self.info(slug)
        return self._path(slug, ".json").read_bytes()

    def graph_json(self, slug: str) -> dict:
        try:
            return json.loads(self.graph_bytes(slug))
        except ValueError:
            raise EngineError(409, "damaged_graph", f"The file of graph {slug!r} is damaged: "
                              "delete it and generate it again.") from None  # fmt: skip

    def graph_json_unchecked(self, slug: str) -> dict:
        """The graph file, before its info record exists (while saving it)."""
        return json.loads(self._path(slug, ".json").read_text())

    def json_path(self, slug: str) -> Path:
        return self._path(slug, ".json")

    def pt_path(self, slug: str) -> Path:
        return self._path(slug, ".pt")

    def list(self, fingerprint: str | None = None) -> list[GraphInfo]:
        infos = []
        for path in self.root.glob("*.info.json"):
            info = self._read_info(path.name.removesuffix(".info.json"))
            if info is None:
                continue  # a half-written, damaged or foreign file
            if fingerprint is None or info.fingerprint == fingerprint:
                infos.append(info)
        return sorted(infos, key=lambda i: i.created, reverse=True)

    # --- writing -----------------------------------------------------------------------
    def write_info(self, info: GraphInfo) -> None:
        atomic_write(self._path(info.slug, ".info.json"), info.model_dump_json(indent=1))

    def write_graph_json(self, slug: str, doc: dict) -> None:
        """A graph file written by Interpscope (component graphs), same schema."""
        atomic_write(self._path(slug, ".json"), json.dumps(doc, indent=2))

    @contextlib.contextmanager
    def writing(self, slug: str, suffix: str) -> Iterator[str]:
        """A temporary path to write `slug`'s file to (by a library that wants a path); it
        replaces the file when the block ends without an error."""
        target = self._path(slug, suffix)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=self.root)
        os.close(fd)
        try:
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    # --- the index (circuit-tracer's graph-metadata.json) ---------------------------------
    def _index(self) -> list[dict]:
        try:
            graphs = json.loads((self.root / INDEX).read_text())["graphs"]
            if isinstance(graphs, list) and all(isinstance(g, dict) for g in graphs):
                return graphs
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s is damaged: rebuilding it from the graph files", self.root / INDEX)
        return self._rebuilt_index()

    def _rebuilt_index(self) -> list[dict]:
        graphs = []
        for info in sorted(self.list(), key=lambda i: i.created):
            if info.kind == "transcoder":
                with contextlib.suppress(OSError, ValueError, KeyError):
                    graphs.append(self.graph_json_unchecked(info.slug)["metadata"])
        return graphs

    def _write_index(self, graphs: list[dict]) -> None:
        atomic_write(self.root / INDEX, json.dumps({"graphs": graphs}, indent=2))

    def index_add(self, metadata: dict) -> None:
        """Put a transcoder graph's metadata in the index (as ``add_graph_metadata`` does)."""
        with self._lock:
            graphs = [g for g in self._index() if g.get("slug") != metadata["slug"]]
            self._write_index(graphs + [metadata])

    def rebuild_index(self) -> None:
        with self._lock:
            self._write_index(self._rebuilt_index())

    # --- edits ---------------------------------------------------------------------------
    def set_qparams(self, slug: str, q: QParamsUpdate) -> dict:
        """Write pinned ids, supernodes and the clicked node into the graph file's qParams;
        `q.version` older than the saved one is a 409 that carries the saved qParams."""
        with self._lock:
            info = self.info(slug)
            doc = self.graph_json(slug)
            if q.version is not None and q.version != info.qparams_version:
                raise EngineError(
                    409, "stale_qparams",
                    f"The pins of graph {slug} changed since version {q.version} (now "
                    f"{info.qparams_version}): merge with the saved ones and try again.",
                    {"version": info.qparams_version, "qParams": doc.get("qParams", {})},
                )  # fmt: skip
            ids = {n["node_id"] for n in doc["nodes"]}
            unknown = [i for i in q.pinnedIds if i not in ids]
            unknown += [i for sn in q.supernodes for i in sn[1:] if i not in ids]
            if unknown:
                raise EngineError(422, "unknown_nodes", f"Not nodes of graph {slug}: {unknown[:5]}")
            if any(len(sn) < 2 or not sn[0].strip() for sn in q.supernodes):
                raise EngineError(
                    422, "bad_supernode", "A supernode is [name, node_id, ...] with a name."
                )
            doc.setdefault("qParams", {}).update(q.model_dump(exclude={"version"}))
            self.write_graph_json(slug, doc)
            info.qparams_version += 1
            self.write_info(info)
            return {**doc["qParams"], "version": info.qparams_version}

    def qparams(self, slug: str) -> dict:
        with self._lock:
            info = self.info(slug)
            return {**self.graph_json(slug).get("qParams", {}), "version": info.qparams_version}

    def delete(self, slug: str) -> None:
        """Remove a graph's files (damaged ones too) and its index entry."""
        with self._lock:
            paths = [self._path(slug, s) for s in SUFFIXES]
            if not any(p.exists() for p in paths):
                raise EngineError(404, "unknown_graph", f"No saved graph {slug!r} (deleted?).")
            for p in paths:
                p.unlink(missing_ok=True)
            self._write_index([g for g in self._index() if g.get("slug") != slug])

    # --- size ----------------------------------------------------------------------------
    def _files_of(self) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for p in self.root.iterdir():
            for suffix in (".info.json", ".json", ".pt"):
                if p.name.endswith(suffix) and p.name != INDEX:
                    out.setdefault(p.name.removesuffix(suffix), []).append(p)
                    break
        return out

    def usage_bytes(self) -> int:
        total = 0
        for p in self.root.iterdir():
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def enforce_limit(self, keep: str) -> list[str]:
        """Delete the oldest graphs (never `keep`) until the folder fits its size limit; the
        slugs deleted. Leftover temporary files of a killed write go first."""
        if self.size_limit is None:
            return []
        with self._lock:
            for p in self.root.glob(f"{TEMP_PREFIX}*"):
                p.unlink(missing_ok=True)
            used, dropped = self.usage_bytes(), []
            if used <= self.size_limit:
                return []
            infos = {i.slug: i for i in self.list()}
            by_age = sorted(self._files_of().items(),
                            key=lambda kv: infos[kv[0]].created if kv[0] in infos else 0.0)  # fmt: skip
            for slug, files in by_age:
                if used <= self.size_limit:
                    break
                if slug == keep:
                    continue
                for p in files:
                    with contextlib.suppress(OSError):
                        used -= p.stat().st_size
                        p.unlink()
                dropped.append(slug)
            if dropped:
                self._write_index([g for g in self._index() if g.get("slug") not in dropped])
                log.info("graphs folder over %d bytes: deleted the oldest: %s",
                         self.size_limit, dropped)  # fmt: skip
            return dropped
