"""Transcoders for the loaded model and circuit-tracer's replacement model around it.

Where transcoders come from (``find_transcoders``):

- a local model directory with ``transcoders/config.yaml`` beside its weights (circuit-tracer's
  layout; the demo organism ships one), trained on the model as ``engine.loading`` processes
  it (fold_ln etc.): the replacement model is built with ``ReplacementModel.from_config`` from
  the loaded model's config and a copy of its weights, MLP and unembed keys renamed to the
  ``old_`` modules circuit-tracer wraps them in;
- a model circuit-tracer publishes transcoders for (``PUBLISHED``), when the hub is reachable:
  ``ReplacementModel.from_pretrained`` loads its own, unprocessed copy of the model.

Both are built on first use, on the model thread, and kept in the loaded model's session
(engine/session.py): loading another model frees them with the old weights.

Prompts given to a replacement model as token ids must start with BOS.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import yaml
from transformer_lens import HookedTransformer

from engine.errors import EngineError
from engine.graphs.schemas import PUBLISHED
from engine.loading import DTYPES, LoadedModel, hub_reachable

log = logging.getLogger(__name__)

CONFIG = "config.yaml"


@dataclass(frozen=True)
class TranscoderSource:
    kind: str  # "local" or "published"
    ref: str  # the transcoder directory, or circuit-tracer's set name
    scan: str


def find_transcoders(lm: LoadedModel | None) -> TranscoderSource | None:
    """Where the loaded model's transcoders are, or None when it has none."""
    if lm is None:
        return None
    if lm.local_dir is not None:
        cfg_path = lm.local_dir / "transcoders" / CONFIG
        if cfg_path.is_file():
            scan = _scan(str(cfg_path), cfg_path.stat().st_mtime) or lm.name
            return TranscoderSource("local", str(cfg_path.parent), scan)
        return None
    if lm.name in PUBLISHED:
        return TranscoderSource("published", PUBLISHED[lm.name], PUBLISHED[lm.name])
    return None


@lru_cache(maxsize=8)
def _scan(cfg_path: str, mtime: float) -> str | None:
    return yaml.safe_load(Path(cfg_path).read_text()).get("scan")


def transcoder_files(tc_dir: Path) -> list[str]:
    """The safetensors file of each layer's transcoder in `tc_dir`, by layer."""
    config = yaml.safe_load((tc_dir / CONFIG).read_text())
    return [str((tc_dir / p).resolve()) for p in config["transcoders"]]


def load_transcoder_set(tc_dir: Path, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """The transcoders in `tc_dir` (``config.yaml`` + ``layer_*.safetensors``) via circuit-tracer."""
    from circuit_tracer.utils.hf_utils import load_transcoders

    config = yaml.safe_load((tc_dir / CONFIG).read_text())
    config["transcoders"] = transcoder_files(tc_dir)
    return load_transcoders(
        config, device=torch.device(device), dtype=dtype, lazy_encoder=False, lazy_decoder=False
    )


def _renamed(key: str) -> str:
    """A HookedTransformer weight's name in circuit-tracer's replacement model."""
    if key.startswith("unembed."):
        return "unembed.old_unembed." + key[len("unembed.") :]
    return key.replace(".mlp.", ".mlp.old_mlp.", 1)


def build_replacement_model(model: HookedTransformer, transcoders):
    """circuit-tracer's replacement model around a copy of `model`'s (processed) weights."""
    from circuit_tracer import ReplacementModel

    rm = ReplacementModel.from_config(
        copy.deepcopy(model.cfg), transcoders, backend="transformerlens", tokenizer=model.tokenizer
    )
    state = {_renamed(k): v for k, v in model.state_dict().items()}
    missing, unexpected = rm.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("transcoders.") for k in missing):
        raise RuntimeError(f"weights do not fit the replacement model: {missing} {unexpected}")
    rm.eval()
    return rm


def local_transcoders(lm: LoadedModel, tc_dir: Path):
    """The transcoders in `tc_dir` for the loaded model `lm`, in its dtype and on its device,
    parameters frozen: loaded once into its session, shared by the latent panels
    (``engine.saes``) and the replacement model, which only reads them."""
    session = lm.session
    if session.transcoders is None:
        tset = load_transcoder_set(tc_dir, lm.device, DTYPES[lm.dtype]).requires_grad_(False)
        session.transcoders = tset
    return session.transcoders


def _build(lm: LoadedModel, source: TranscoderSource):
    if source.kind == "local":
        return build_replacement_model(lm.model, local_transcoders(lm, Path(source.ref)))
    if not hub_reachable():
        raise EngineError(
            503,
            "transcoders_offline",
            f"The published transcoders '{source.ref}' for {lm.name} need the Hugging Face hub, "
            "which this machine cannot reach.",
        )
    from circuit_tracer import ReplacementModel

    return ReplacementModel.from_pretrained(
        lm.name, source.ref, backend="transformerlens", device=torch.device(lm.device),
        dtype=DTYPES[lm.dtype],
    )  # fmt: skip


def replacement_model(lm: LoadedModel):
    """circuit-tracer's replacement model of `lm`, built on first use (on the model thread)
    and kept in its session; a 409 when `lm` has no transcoders."""
    session = lm.session
    if session.replacement is None:
        source = find_transcoders(lm)
        if source is None:
            raise EngineError(
                409,
                "no_transcoders",
                f"{lm.name} has no transcoders: attribution graphs need a local model directory "
                "with transcoders/config.yaml, or a model with published transcoders "
                f"({', '.join(PUBLISHED)}). The component graph works for any model.",
            )
        session.replacement = _build(lm, source)
        log.info("replacement model for %s built (%s)", lm.name, source.scan)
    return session.replacement
