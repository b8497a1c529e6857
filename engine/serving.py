"""Serve a model that is already in memory (a notebook's fine-tuned HookedTransformer).

    from engine import serve
    handle = serve(model, port=8765)      # the same API as ``python -m engine``
    # INTERPSCOPE_ENGINE_URL=http://127.0.0.1:8765 streamlit run app.py
    handle.refresh()                      # after changing the weights in place
    handle.stop()

The engine runs in this process (uvicorn on a background thread) over the very model object,
so nothing is copied or reloaded. Its attention and unembedding weights are laid out in place
for the forward pass (engine/layout.py: the same values and outputs, no weight copied per
forward pass; only ``.view()`` of one of them would now need ``.reshape()``). Its fingerprint, which keys the result cache, is a hash of
the weights as they are when served (or refreshed): results of other weights never mix.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import uvicorn
from transformer_lens import HookedTransformer

from engine.api import create_app
from engine.errors import EngineError
from engine.loading import DTYPES, LoadedModel
from engine.service import Engine
from engine.settings import EngineSettings

FULL_HASH_BYTES = 1 << 30  # past this, each tensor's size and a strided sample are hashed
SAMPLES = 4096


def tensor_hash(model: torch.nn.Module) -> str:
    """sha256 of the state dict (names, shapes, dtypes, values); above 1 GiB in all, each
    tensor contributes its first values and a strided sample (fine-tuning moves them all)."""
    state = model.state_dict()
    total = sum(t.numel() * t.element_size() for t in state.values())
    h = hashlib.sha256()
    for name, t in state.items():
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        flat = t.detach().reshape(-1)
        if total > FULL_HASH_BYTES and flat.numel() > 2 * SAMPLES:
            step = flat.numel() // SAMPLES
            flat = torch.cat([flat[:SAMPLES], flat[::step]])
        h.update(flat.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def in_memory(model: HookedTransformer, name: str | None = None) -> LoadedModel:
    """A LoadedModel over `model` itself, fingerprinted by its weights."""
    if not isinstance(model, HookedTransformer):
        raise TypeError(f"serve() takes a HookedTransformer, not {type(model).__name__}")
    if model.tokenizer is None:
        raise EngineError(422, "no_tokenizer", "The model has no tokenizer: set one first.")
    cfg = model.cfg
    dtype = next((k for k, v in DTYPES.items() if v == cfg.dtype), str(cfg.dtype))
    display = name or f"{cfg.model_name} (in memory)"
    model.eval()
    t0 = time.perf_counter()
    fingerprint = f"{display}@{tensor_hash(model)}:{dtype}"
    return LoadedModel(
        model=model,
        name=display,
        source="memory",
        fingerprint=fingerprint,
        device=str(cfg.device),
        dtype=dtype,
        load_seconds=time.perf_counter() - t0,
        model_max_context=cfg.n_ctx,
    )


@dataclass
class ServeHandle:
    url: str
    engine: Engine
    server: uvicorn.Server
    thread: threading.Thread

    def refresh(self) -> None:
        """Re-fingerprint the model after its weights changed, and drop cached prompt runs."""
        lm = self.engine.require_model()
        self.engine.compute(lambda: self.engine.use(in_memory(lm.model, lm.name)))

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.engine.close()


def serve(
    model: HookedTransformer,
    *,
    port: int = 8765,
    host: str = "127.0.0.1",
    name: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    data_dirs: list[str | Path] = (),
    allowed_hosts: list[str] = (),
    timeout: float = 30.0,
) -> ServeHandle:
    """Start an engine on `model` in this process; returns once it answers HTTP.
    `data_dirs` and `allowed_hosts` add to the settings as ``--data-dir`` and
    ``--allowed-host`` do (directories requests may read, host names clients use)."""
    overrides = {"host": host, "port": port, "token": token, "model": None}
    if cache_dir is not None:
        overrides["cache_dir"] = Path(cache_dir)
    settings = EngineSettings(**overrides)
    settings.data_dirs = [*settings.data_dirs, *map(Path, data_dirs)]
    settings.allowed_hosts = [*settings.allowed_hosts, *allowed_hosts]
    settings.check_exposure()
    engine = Engine(settings, load=False)
    engine.compute(lambda: engine.use(in_memory(model, name)))  # torch work: the model thread
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine), host=host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="interpscope-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            engine.close()
            raise RuntimeError(f"the engine did not start on {settings.url} (port in use?)")
        time.sleep(0.05)
    return ServeHandle(settings.url, engine, server, thread)
