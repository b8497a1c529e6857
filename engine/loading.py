"""Load a model into TransformerLens, from a TransformerLens name or a local Hugging Face dir.

Both go through the steps of ``HookedTransformer.from_pretrained`` (config from the Hugging
Face config, weights converted by TransformerLens, the same weight processing); the only
difference is that a local directory skips the official-name lookup, which refuses paths.
Nothing is fetched for a name that is not in the local Hugging Face cache while the hub is
unreachable: that fails at once with a clear message.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformer_lens import HookedTransformer
from transformer_lens import loading_from_pretrained as tl_loading

from engine.errors import EngineError
from engine.fast_unembed import install_fast_unembed

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HUB_HOST = "huggingface.co"


def pick_device(requested: str | None = None) -> str:
    """The best available device (cuda > mps > cpu) unless one is requested."""
    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class LoadedModel:
    """A model ready for analyses, and what identifies its weights."""

    model: HookedTransformer
    name: str
    source: str  # "local" or "hub"
    fingerprint: str
    device: str
    dtype: str
    load_seconds: float
    local_dir: Path | None = None  # the Hugging Face directory it came from, if local
    # State built on this model that must live and die with it (its SAE registry): loading
    # another model drops it with the old weights instead of keeping both in memory.
    attached: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers

    @property
    def n_heads(self) -> int:
        return self.model.cfg.n_heads

    @property
    def n_ctx(self) -> int:
        return self.model.cfg.n_ctx


def is_local_model_dir(name_or_dir: str) -> bool:
    return (Path(name_or_dir).expanduser() / "config.json").is_file()


def weights_hash(model_dir: Path, full_limit_bytes: int = 1 << 30) -> str:
    """sha256 of the weight files; past `full_limit_bytes` only sizes and edge bytes are hashed."""
    files = sorted(
        p for p in model_dir.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".json"}
    )
    total = sum(p.stat().st_size for p in files)
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with p.open("rb") as f:
            if total <= full_limit_bytes:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            else:
                h.update(str(p.stat().st_size).encode())
                h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_hub_name(name: str) -> tuple[str, str]:
    """(official name, revision) of a TransformerLens model name, or a clear error."""
    try:
        official = tl_loading.get_official_model_name(name)
    except ValueError:
        close = difflib.get_close_matches(name, tl_loading.OFFICIAL_MODEL_NAMES, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise EngineError(
            404,
            "unknown_model",
            f"'{name}' is neither a local Hugging Face model directory nor a model "
            f"TransformerLens knows.{hint}",
        ) from None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(official, "config.json")
    if isinstance(cached, str):
        revision = Path(cached).parent.name  # snapshots/<commit>/config.json
        if not hub_reachable():
            os.environ["HF_HUB_OFFLINE"] = "1"  # load from the cache without network calls
        return official, revision
    if not hub_reachable():
        raise EngineError(
            503,
            "model_not_cached",
            f"'{official}' is not in the local Hugging Face cache and the hub cannot be "
            "reached from this machine. Download it once while online, or give a local "
            "model directory.",
        )
    return official, "latest"


def load_model(
    name_or_dir: str, *, device: str | None = None, dtype: str = "float32"
) -> LoadedModel:
    """Load `name_or_dir` the way ``HookedTransformer.from_pretrained`` does."""
    if dtype not in DTYPES:
        raise EngineError(422, "bad_dtype", f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    t0 = time.perf_counter()
    device = pick_device(device)
    if is_local_model_dir(name_or_dir):
        ref = str(Path(name_or_dir).expanduser().resolve())
        source, display, version = "local", Path(ref).name, weights_hash(Path(ref))
    else:
        ref, version = resolve_hub_name(name_or_dir)
        source, display = "hub", ref
    try:
        cfg = tl_loading.get_pretrained_model_config(
            ref, device=device, dtype=DTYPES[dtype], fold_ln=True
        )
        state_dict = tl_loading.get_pretrained_state_dict(ref, cfg, None, dtype=DTYPES[dtype])
    except NotImplementedError as e:
        raise EngineError(422, "unsupported_architecture", str(e)) from None
    model = HookedTransformer(cfg, None, move_to_device=False, default_padding_side="right")
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=True,
        center_writing_weights=True,
        center_unembed=True,
        fold_value_biases=True,
    )
    model.move_model_modules_to_device()
    model.eval()
    install_fast_unembed(model)
    seconds = time.perf_counter() - t0
    log.info("loaded %s (%s) on %s in %.2f s", display, source, device, seconds)
    return LoadedModel(
        model=model,
        name=display,
        source=source,
        fingerprint=f"{display}@{version}:{dtype}",
        device=device,
        dtype=dtype,
        load_seconds=seconds,
        local_dir=Path(ref) if source == "local" else None,
    )
