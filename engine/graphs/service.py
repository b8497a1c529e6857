"""The engine's graph service: cost, the attribution job, saved graphs, component graphs.

One per engine (``graph_service(engine)``), holding the replacement model of the loaded model
(``ReplacementCache``) and the folder of saved graphs (``GraphStore``). Work on the model takes
the model thread (``engine.compute``) like every analysis.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pydantic import BaseModel

from engine import saes, targets
from engine.errors import EngineError
from engine.graphs import cost as costs
from engine.graphs.files import Labeler, write_graph_files
from engine.graphs.progress import tracking
from engine.graphs.replacement import ReplacementCache, find_transcoders, transcoders_loaded
from engine.graphs.schemas import (
    ComponentGraphParams,
    GraphCost,
    GraphInfo,
    GraphKind,
    GraphParams,
)
from engine.graphs.store import GraphStore, make_slug
from engine.jobs import JobContext

if TYPE_CHECKING:
    from engine.service import Engine

log = logging.getLogger(__name__)
_lock = threading.Lock()


def graph_service(engine: Engine) -> GraphService:
    with _lock:
        svc = getattr(engine, "_graph_service", None)
        if svc is None:
            svc = engine._graph_service = GraphService(engine)
        return svc


class GraphService:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.replacements = ReplacementCache()
        self.store = GraphStore(
            Path(engine.settings.cache_dir) / "graphs",
            size_limit_bytes=engine.settings.graphs_size_mb << 20,
        )

    # --- cost --------------------------------------------------------------------
    def _prepare(self, p: GraphParams) -> tuple[list[int], int | None]:
        lm = self.engine.require_model()
        ids, _ = self.engine.tokenize(p.prompt)
        if ids[0] != lm.model.tokenizer.bos_token_id:
            raise EngineError(422, "no_bos", "Attribution needs a model with a BOS token.")
        target = None if p.target is None else targets.resolve(lm, p.target)
        return ids, target

    def _unbuilt_weights(self) -> int:
        """Bytes a replacement model not built yet will add (model copy + transcoders, unless
        the latent panels loaded the transcoders already: they are shared)."""
        lm = self.engine.require_model()
        if self.replacements.built_for(lm):
            return 0
        source = find_transcoders(lm)
        local = source is not None and source.kind == "local" and not transcoders_loaded(lm)
        files = Path(source.ref).glob("*.safetensors") if local else []
        return costs.weights_bytes(lm.model) + sum(f.stat().st_size for f in files)

    def cost(self, p: GraphParams, *, precise: bool = True) -> GraphCost:
        """What `p` will cost; ``fits`` False with a reason when it cannot run here. Not
        `precise`: when even every latent active at every token fits, that bound is the
        answer (no forward pass)."""
        lm = self.engine.require_model()
        ids, _ = self._prepare(p)
        if not precise and self.replacements.built_for(lm):
            rm = self.replacements.get(lm)
            bound = rm.cfg.n_layers * (len(ids) - 1) * rm.transcoders.d_transcoder
            cost = costs.estimate(
                p, n_tokens=len(ids), active=bound, cfg=lm.model.cfg, device=lm.device
            )
            if cost.fits:
                return cost
        extra = self._unbuilt_weights()
        if extra > costs.HEADROOM * costs.available_bytes(lm.device):
            upper = lm.n_layers * (len(ids) - 1) * 64  # a guess: the model is too big anyway
            return costs.estimate(
                p, n_tokens=len(ids), active=upper, cfg=lm.model.cfg, device=lm.device,
                weights_bytes=extra,
            )  # fmt: skip

        def count() -> int:
            rm = self.replacements.get(lm)
            return costs.count_active_latents(rm, torch.tensor(ids, device=lm.device))

        active = self.engine.compute(count)
        return costs.estimate(
            p, n_tokens=len(ids), active=active, cfg=lm.model.cfg, device=lm.device
        )

    # --- the attribution job -------------------------------------------------------
    def slug(self, p: BaseModel, ids: list[int], kind: GraphKind = GraphKind.transcoder) -> str:
        lm = self.engine.require_model()
        params = p.model_dump(mode="json", exclude={"prompt"})
        return make_slug(lm.name, kind.value, lm.fingerprint, ids, params)

    def attribute(self, ctx: JobContext, p: GraphParams) -> dict:
        """The job: attribute, prune, save; a saved graph of the same request is reused."""
        from circuit_tracer import attribute

        lm = self.engine.require_model()
        ids, target = self._prepare(p)
        slug = self.slug(p, ids)
        if self.store.exists(slug):
            return self.store.info(slug).model_dump()
        ctx.progress(0.0, "estimating cost")
        cost = self.cost(p, precise=False)
        if not cost.fits:
            raise EngineError(413, "graph_too_large", cost.reason)
        t0 = time.perf_counter()
        n_logits = 1 if target is not None else p.max_n_logits

        def run():
            rm = self.replacements.get(lm)
            with tracking(rm, ctx.progress, latent_budget=p.max_feature_nodes, n_logits=n_logits):
                return rm, attribute(
                    torch.tensor(ids, device=lm.device),
                    rm,
                    attribution_targets=None if target is None else torch.tensor([target]),
                    max_n_logits=p.max_n_logits,
                    desired_logit_prob=p.desired_logit_prob,
                    batch_size=p.batch_size,
                    max_feature_nodes=p.max_feature_nodes,
                )

        rm, graph = self.engine.compute(run)
        ctx.progress(0.92, "pruning and writing the graph files")
        with self.store.writing(slug, ".pt") as tmp:
            graph.to_pt(tmp)
        source = find_transcoders(lm)
        local = source is not None and source.kind == "local"
        counts = self.engine.compute(
            write_graph_files, graph, slug, self.store.root, tokenizer=lm.model.tokenizer,
            scan=rm.scan, node_threshold=p.node_threshold, edge_threshold=p.edge_threshold,
            labeler=shipped_labels(lm) if local else None,
        )  # fmt: skip
        self.store.index_add(counts.pop("metadata"))
        info = self._save_info(slug, GraphKind.transcoder, p.prompt, ids, p, t0, counts)
        return info.model_dump()

    def _save_info(self, slug, kind, prompt, ids, p, t0, counts=None) -> GraphInfo:
        lm = self.engine.require_model()
        if counts is None:
            doc = self.store.graph_json_unchecked(slug)
            counts = {"n_nodes": len(doc["nodes"]), "n_links": len(doc["links"])}
        info = GraphInfo(
            slug=slug, kind=kind, model=lm.name, fingerprint=lm.fingerprint, prompt=prompt,
            token_ids=ids, params=p.model_dump(mode="json", exclude={"prompt"}),
            n_nodes=counts["n_nodes"], n_links=counts["n_links"],
            seconds=round(time.perf_counter() - t0, 3), created=time.time(),
        )  # fmt: skip
        self.store.write_info(info)
        self.store.enforce_limit(keep=slug)
        log.info("graph %s: %d nodes, %d links", slug, info.n_nodes, info.n_links)
        return info

    # --- component graphs ------------------------------------------------------------
    def component_graph(self, p: ComponentGraphParams) -> GraphInfo:
        """Heads and MLPs as nodes, from attribution patching; saved like the others."""
        from engine.graphs.patching import component_graph

        lm = self.engine.require_model()
        clean, _ = self.engine.tokenize(p.prompt)
        corrupted, _ = self.engine.tokenize(p.corrupted)
        if len(clean) != len(corrupted):
            raise EngineError(
                422,
                "length_mismatch",
                f"The clean prompt has {len(clean)} tokens and the corrupted one "
                f"{len(corrupted)}: attribution patching needs the same number.",
            )
        target = targets.resolve(lm, p.target)
        baseline = None if p.baseline is None else targets.resolve(lm, p.baseline, what="baseline")
        slug = self.slug(p, clean + corrupted, GraphKind.component)
        if self.store.exists(slug):
            return self.store.info(slug)
        t0 = time.perf_counter()
        doc = self.engine.compute(
            component_graph, lm.model, clean, corrupted, target, baseline, slug=slug,
            edge_threshold=p.edge_threshold,
        )  # fmt: skip
        self.store.write_graph_json(slug, doc)
        return self._save_info(slug, GraphKind.component, p.prompt, clean, p, t0)


def run_attribution_job(engine: Engine, ctx: JobContext, p: GraphParams) -> dict:
    """The ``attribution_graph`` job kind."""
    return graph_service(engine).attribute(ctx, p)


def shipped_labels(lm) -> Labeler:
    """(layer, latent) -> the label shipped beside the local transcoders, from the examples the
    latent panels already read (the SAE registry's transcoder books)."""
    reg = saes.for_model(lm)

    def label(layer: int, index: int) -> str | None:
        book = reg.transcoder(layer).book
        return book.label(index) if book else None

    return label


def transcoder_capability(lm) -> tuple[bool, str]:
    """Whether attribution graphs over transcoders work for `lm`, and if not, why."""
    if lm is None:
        return False, "no model loaded"
    source = find_transcoders(lm)
    if source is None:
        return False, f"{lm.name} has no transcoders (the component graph works without)"
    return True, f"{source.kind} transcoders: {source.scan}"
