"""Saved directions: a ``DirectionStore`` on the model's session, files in the data directory.

Each direction is a pair of files in ``<first data dir>/directions/``: ``<name>.json`` (the
``Direction`` without its vector) and ``<name>.safetensors`` (the unit vector, float32), each
written atomically (engine/atomic.py) and confined to that folder (engine/paths.py). A
direction remembers the fingerprint of the model it was found on (``model_fingerprint``: a hash
of the config's sizes and a few weight tensors), so one found on another model is refused with
the reason; one found on a model of the same architecture and sizes (base -> chat) may be used
when asked explicitly (``allow_other_model``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor
from transformer_lens import HookedTransformer

from engine import paths
from engine.atomic import TEMP_PREFIX, atomic_write
from engine.errors import EngineError
from engine.schemas.directions import DIRECTION_NAME, Direction, DirectionInfo

if TYPE_CHECKING:
    from engine.loading import LoadedModel
    from engine.service import Engine

FOLDER = "directions"
MAX_DIRECTIONS = 2000


def model_shape(model: HookedTransformer) -> str:
    """Architecture and sizes: two models with the same shape share a residual-stream basis
    only if one was trained from the other (base -> chat), hence only on request."""
    c = model.cfg
    return (
        f"{c.original_architecture or c.model_name}|d_model={c.d_model}|n_layers={c.n_layers}"
        f"|n_heads={c.n_heads}|d_mlp={c.d_mlp}|d_vocab={c.d_vocab}"
    )


@torch.inference_mode()
def model_fingerprint(model: HookedTransformer) -> str:
    """sha256 (16 hex digits) of the model's shape and a few of its weights: the embedding's
    first rows, the last MLP's output weights' first row, the unembedding's first column."""
    h = hashlib.sha256(model_shape(model).encode())
    last = model.blocks[-1]
    parts = [model.W_E[:8]]
    if hasattr(last, "mlp") and hasattr(last.mlp, "W_out"):
        parts.append(last.mlp.W_out[0])
    parts.append(model.W_U[:, 0])
    for p in parts:
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def unit(v: Float[Tensor, " d"]) -> tuple[Float[Tensor, " d"], float]:
    n = float(v.float().norm())
    if n == 0 or n != n:
        raise EngineError(422, "zero_direction", "A direction of norm 0 has no direction.")
    return v.float() / n, n


def _check_name(name: str) -> str:
    if not re.match(DIRECTION_NAME, name or ""):
        raise EngineError(
            422, "bad_direction_name",
            "A direction's name is 1 to 80 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit.",
        )  # fmt: skip
    return name


class DirectionStore:
    """The saved directions, as the loaded model sees them (see the module's docstring)."""

    def __init__(self, root: Path, model: HookedTransformer, model_name: str = ""):
        self.root = Path(root)
        self.fingerprint = model_fingerprint(model)
        self.shape = model_shape(model)
        self.d_model = model.cfg.d_model
        self.hook_dict = model.hook_dict
        self.model_name = model_name
        self._lock = threading.RLock()

    # --- files ------------------------------------------------------------------------
    def _path(self, name: str, suffix: str) -> Path:
        p = (self.root / f"{_check_name(name)}{suffix}").resolve()
        if p.parent != self.root.resolve():
            raise EngineError(422, "bad_direction_name", f"{name!r} is not a direction name.")
        return p

    def _read(self, name: str) -> Direction | None:
        meta, vec = self._path(name, ".json"), self._path(name, ".safetensors")
        if not meta.is_file() or not vec.is_file():
            return None
        try:
            doc = json.loads(meta.read_text())
            v = st_load(vec.read_bytes())["vector"]
            return Direction.model_validate({**doc, "vector": v.tolist()})
        except (OSError, ValueError, KeyError):  # a broken pair is skipped, not fatal
            return None

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.stem
            for p in self.root.glob("*.json")
            if not p.name.startswith(TEMP_PREFIX) and p.with_suffix(".safetensors").is_file()
        )[:MAX_DIRECTIONS]

    # --- what the routes do -------------------------------------------------------------
    def compatibility(self, d: Direction) -> str:
        if d.model_fingerprint == self.fingerprint:
            return "same_model"
        if d.model_shape == self.shape and len(d.vector) == self.d_model:
            return "same_shape"
        return "other_model"

    def info(self, d: Direction) -> DirectionInfo:
        return DirectionInfo(
            name=d.name, hook=d.hook, d_model=len(d.vector), norm=d.norm,
            method=str(d.provenance.get("method", "")), metrics=d.metrics,
            model_name=d.model_name, model_fingerprint=d.model_fingerprint,
            compatibility=self.compatibility(d), created=d.provenance.get("created"),
        )  # fmt: skip

    def list(self, all_models: bool = False) -> list[DirectionInfo]:
        """The saved directions of this model (with `all_models`, every one, each saying
        whether it is usable here)."""
        with self._lock:
            found = [d for n in self.names() if (d := self._read(n)) is not None]
        infos = [self.info(d) for d in found]
        return [i for i in infos if all_models or i.compatibility == "same_model"]

    def save(self, d: Direction, *, overwrite: bool = True) -> DirectionInfo:
        """Save `d`, found on the loaded model unless it says otherwise: its vector unit-
        normalised (``norm``: the norm as given, unless already set), its hook point checked."""
        if len(d.vector) != self.d_model and not d.model_fingerprint:
            raise EngineError(
                422, "bad_direction_size",
                f"The vector has {len(d.vector)} numbers; this model's d_model is {self.d_model}.",
            )  # fmt: skip
        if not d.model_fingerprint and d.hook not in self.hook_dict:
            raise EngineError(422, "bad_hook_point", f"This model has no hook point {d.hook!r}.")
        v, n = unit(torch.tensor(d.vector, dtype=torch.float32))
        d = d.model_copy(
            update={
                "vector": v.tolist(),
                "norm": d.norm or n,
                "model_fingerprint": d.model_fingerprint or self.fingerprint,
                "model_shape": d.model_shape or self.shape,
                "model_name": d.model_name or self.model_name,
                "provenance": {"created": time.time(), **d.provenance},
            }
        )
        meta, vec = self._path(d.name, ".json"), self._path(d.name, ".safetensors")
        with self._lock:
            if not overwrite and meta.exists():
                raise EngineError(409, "direction_exists", f"A direction {d.name!r} exists.")
            if len(self.names()) >= MAX_DIRECTIONS and not meta.exists():
                raise EngineError(507, "too_many_directions", "Delete some saved directions.")
            # vector first: a pair is listed once both exist, and the JSON is written last
            atomic_write(vec, st_save({"vector": v.contiguous()}))
            atomic_write(meta, d.model_dump_json(exclude={"vector"}, indent=1))
        return self.info(d)

    def get(self, name: str) -> Direction:
        with self._lock:
            d = self._read(name)
        if d is None:
            raise EngineError(404, "no_such_direction", f"No saved direction {name!r}.")
        return d

    def delete(self, name: str) -> dict:
        with self._lock:
            meta, vec = self._path(name, ".json"), self._path(name, ".safetensors")
            if not meta.exists() and not vec.exists():
                raise EngineError(404, "no_such_direction", f"No saved direction {name!r}.")
            meta.unlink(missing_ok=True)  # JSON first: a half-deleted pair is no longer listed
            vec.unlink(missing_ok=True)
        return {"deleted": name}

    def usable(self, name: str, allow_other_model: bool = False) -> Direction:
        """The direction `name` if it may act on the loaded model (else a 409 saying why)."""
        d = self.get(name)
        how = self.compatibility(d)
        if how == "same_model" or (how == "same_shape" and allow_other_model):
            if d.hook not in self.hook_dict:
                raise EngineError(409, "direction_hook_missing",
                                  f"{name!r} is read at {d.hook}, which this model lacks.")  # fmt: skip
            return d
        if how == "same_shape":
            raise EngineError(
                409, "direction_other_model",
                f"{name!r} was found on {d.model_name or 'another model'}, not on the loaded "
                "one. It has the same shape, so you may use it explicitly (allow_other_model).",
            )  # fmt: skip
        raise EngineError(
            409, "direction_other_model",
            f"{name!r} was found on {d.model_name or 'another model'} ({d.model_shape or '?'}); "
            f"the loaded model is {self.shape}: its residual stream is another space.",
        )  # fmt: skip


def folder(engine: Engine) -> Path:
    """``<first data dir>/directions``, confined like every file the engine touches."""
    return paths.confine(FOLDER, engine.settings, what="directions folder")


def store(engine: Engine) -> DirectionStore:
    """The loaded model's store, opened on first use (kept in its session)."""
    lm = engine.require_model()
    return for_model(lm, folder(engine))


def for_model(lm: LoadedModel, root: Path) -> DirectionStore:
    s = lm.session
    if s.directions is None:
        s.directions = DirectionStore(root, lm.model, lm.name)
    return s.directions


def tensor(d: Direction, device: str | torch.device = "cpu") -> Float[Tensor, " d"]:
    """The unit vector of a saved direction, as float32 on `device`."""
    return torch.tensor(d.vector, dtype=torch.float32, device=device)
