"""Weight orthogonalisation: the ablation of a direction written into the model's weights.

Every weight that writes to the residual stream (the token and position embeddings, each
attention block's output projection W_O and each MLP's W_out, with their biases) has the unit
direction r projected out of what it writes: ``W <- W - (W r) r^T`` along its d_model axis.
The residual stream then never holds r, which is what ablating r at every layer with hooks
(engine/interventions.py, mode ``ablate``) does. The edit is made on the model's Hugging Face
weight files, and the result is a Hugging Face directory (config, safetensors, tokenizer)
that loads back anywhere, the engine included. With more directions (``ExportRequest.also``)
their span is projected out (orthonormal columns from ``interventions.span``), as the hooks
ablate several directions together.

TransformerLens centres the weights that write to the residual stream of a LayerNorm model
(``center_writing_weights``), so its residual stream has no component along (1, ..., 1): the
direction is taken without that component (``interventions.residual_direction``), in the
hooks and here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor

from engine import directions, interventions, paths
from engine.atomic import TEMP_PREFIX
from engine.errors import EngineError
from engine.schemas.directions import ExportRequest, ExportResult

if TYPE_CHECKING:
    from engine.service import Engine

EXPORTS = "exports"
# Hugging Face parameter names that write to the residual stream, and their d_model axis
# (GPT-2's Conv1D stores (in, out), nn.Linear (out, in)); a bias is a d_model vector
WRITERS: list[tuple[re.Pattern, int]] = [
    (re.compile(p), axis)
    for p, axis in [
        (r"(^|\.)(wte|wpe|embed_tokens|embed_in|embed_positions)\.weight$", -1),
        (r"(^|\.)(attn|mlp)\.c_proj\.(weight|bias)$", -1),  # GPT-2 (Conv1D)
        (r"(^|\.)(o_proj|down_proj|dense_4h_to_h|attention\.dense|out_proj|fc_out)\.weight$", 0),
        (r"(^|\.)(o_proj|down_proj|dense_4h_to_h|attention\.dense|out_proj|fc_out)\.bias$", -1),
    ]
]
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt")


def project_out(w: Tensor, r: Float[Tensor, " d"] | Float[Tensor, "d k"], axis: int) -> Tensor:
    """`w` with the component along unit `r` (or in the span of orthonormal columns `r`)
    removed from its `axis` (of length d_model)."""
    wf = w.float().movedim(axis, -1)  # the hooks' own ablations, on the weights' rows
    wf = interventions.ablate(wf, r) if r.ndim == 1 else interventions.ablate_span(wf, r)
    return wf.movedim(-1, axis).to(w.dtype).contiguous()


def orthogonalise(
    state: dict[str, Tensor], r: Float[Tensor, " d"] | Float[Tensor, "d k"]
) -> tuple[dict[str, Tensor], list[str]]:
    """The state dict with `r` (a unit direction, or orthonormal columns: their span) projected
    out of every residual-stream writer; the names changed."""
    d, out, changed = r.shape[0], dict(state), []
    for name, w in state.items():
        for pattern, axis in WRITERS:
            if pattern.search(name) and w.shape[axis] == d:
                out[name] = project_out(w, r.to(w.device), axis)
                changed.append(name)
                break
    return out, changed


def _source_dir(engine: Engine) -> Path:
    lm = engine.require_model()
    from engine.loading import _cached_snapshot

    src = lm.local_dir or _cached_snapshot(lm.name)
    if src is None or not (Path(src) / "config.json").is_file():
        raise EngineError(
            422, "no_local_weights",
            "Exporting needs the model's Hugging Face files on this machine (a local model "
            "directory or the hub cache).",
        )  # fmt: skip
    return Path(src)


def write_export(
    src: Path, r: Float[Tensor, " d"] | Float[Tensor, "d k"], out: Path, note: dict
) -> tuple[list[str], list[str]]:
    """Copy the model directory `src` into `out` (replacing it whole, atomically: written in a
    temporary sibling, then renamed) with `r` projected out of its weights. A tied unembedding
    is untied first (it reads the residual stream, so it keeps the original embedding)."""
    shards = sorted(src.glob("*.safetensors"))
    if not shards:
        raise EngineError(422, "not_safetensors", f"{src.name} has no safetensors weights.")
    config = json.loads((src / "config.json").read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out.parent))
    changed: list[str] = []
    try:
        for p in src.iterdir():
            if p.is_file() and p.suffix not in WEIGHT_SUFFIXES:
                shutil.copy2(p, tmp / p.name)
        for shard in shards:
            state = load_file(shard)
            new, ch = orthogonalise(state, r)
            if config.get("tie_word_embeddings", True) and "lm_head.weight" not in new:
                emb = [n for n in ch if re.search(r"(wte|embed_tokens|embed_in)\.weight$", n)]
                if emb:  # the unembedding keeps reading the original embedding
                    new["lm_head.weight"] = state[emb[0]].clone()
                    config["tie_word_embeddings"] = False
            changed += ch
            save_file(new, tmp / shard.name, metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "orthogonalised.json").write_text(json.dumps({**note, "changed": changed}, indent=1))
        for f in tmp.iterdir():  # flushed before the rename makes them visible
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out.parent))
            os.replace(out, old / "old")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p.name for p in out.iterdir()), changed


def export(engine: Engine, req: ExportRequest) -> ExportResult:
    """The loaded model with a saved direction projected out of its weights, written to
    ``<first data dir>/exports/<out>`` (default: ``<model>-<direction>-orthogonalised``)."""
    lm = engine.require_model()
    store = engine.compute(directions.store, engine)
    d = store.usable(req.direction, req.allow_other_model)
    src = _source_dir(engine)
    name = req.out or re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{lm.name}-{d.name}-orthogonalised")[:80]
    root = paths.confine(EXPORTS, engine.settings, what="exports folder")
    out = (root / name.lstrip(".")).resolve()
    if out.parent != root.resolve():
        raise EngineError(422, "bad_export_name", f"{name!r} is not a folder name.")
    more = [store.usable(n, req.allow_other_model) for n in req.also]
    rs = [
        interventions.residual_direction(directions.tensor(x), interventions.centred(lm.model))
        for x in [d, *more]
    ]
    r = rs[0] if not more else interventions.span(rs)
    note = {"direction": d.name, "hook": d.hook, "source_model": lm.name,
            "source_fingerprint": store.fingerprint, "provenance": d.provenance}  # fmt: skip
    if more:
        note["also"] = [{"direction": x.name, "hook": x.hook, "provenance": x.provenance}
                        for x in more]  # fmt: skip
    files, changed = write_export(src, r, out, note)
    return ExportResult(path=str(out), files=files, changed=changed)
