"""Load a model into TransformerLens, from a TransformerLens name or a local Hugging Face dir.

Both go through the steps of ``HookedTransformer.from_pretrained`` (config, weights converted
by TransformerLens, the same weight processing). A TransformerLens name uses its official
config; a local directory (or a non-official name found in the local Hugging Face cache) uses
the directory's own config, mapped by architecture (engine/hf_config.py), never an official
config that happens to match the folder's name. An architecture HookedTransformer cannot
represent loads through TransformerLens's TransformerBridge (engine/bridge.py).

The context is capped (``max_context``): TransformerLens builds n_ctx x n_ctx masks and
rotary tables up front, so a model's own maximum (131072 for Llama-3.2-1B) is never used as
such. The memory the model needs at that cap is estimated from the config before any weight
is read, and a model that will not fit is refused with the numbers (engine/memory.py).
Nothing is fetched for a name that is not in the local Hugging Face cache while the hub is
unreachable: that fails at once with a clear message.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import loading_from_pretrained as tl_loading
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

from engine import conversion_check as check
from engine import hf_config, memory, weights
from engine.errors import EngineError
from engine.layout import forward_layout
from engine.memory import MemoryEstimate
from engine.schemas.model import LoadEstimate

if TYPE_CHECKING:
    from engine.session import ModelSession

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
HUB_HOST = "huggingface.co"
# The default context cap: a prompt this long must run with every activation cached (the
# attention pattern alone is layers x heads x n_ctx^2), and the views read up to ~1000 tokens.
DEFAULT_MAX_CONTEXT = {"cpu": 2048, "mps": 2048, "cuda": 4096}
MIN_AUTO_CONTEXT = 256  # a default cap is lowered to fit memory, but not below this
# Architectures whose tokenizer TransformerLens loads without add_bos_token.
NO_BOS_TOKEN = {"OlmoForCausalLM", "OlmoeForCausalLM", "Olmo2ForCausalLM", "Qwen3ForCausalLM",
                "PhiForCausalLM"}  # fmt: skip


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
    path: str = "hooked"  # "hooked" (HookedTransformer) or "bridge" (TransformerBridge)
    model_max_context: int | None = None  # the checkpoint's own context; n_ctx is the cap
    memory: MemoryEstimate | None = None
    notes: list[str] = field(default_factory=list)  # what the user should know (slow on CPU)
    unavailable: dict[str, str] = field(default_factory=dict)  # feature -> why not here
    # What is built on this model and must live and die with it (engine/session.py), opened
    # by the engine that serves it (``Engine.use``)
    opened: ModelSession | None = field(default=None, repr=False, compare=False)

    @property
    def session(self) -> ModelSession:
        if self.opened is None:
            raise RuntimeError(f"{self.name} is not served by an engine: Engine.use opens it")
        return self.opened

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


def default_max_context(device: str) -> int:
    return DEFAULT_MAX_CONTEXT.get(device.split(":")[0], 2048)


@dataclass
class Plan:
    """What will be loaded, and how, decided from configs alone (no weights read yet)."""

    ref: str  # a local directory, or an official TransformerLens name
    source: str
    display: str
    version: str
    hf: PretrainedConfig | None  # the directory's own config (None for official names)
    cfg: HookedTransformerConfig | None  # None: HookedTransformer cannot represent it
    why_bridge: str = ""
    model_max_context: int | None = None

    @property
    def local(self) -> bool:
        return self.hf is not None


def _check_devices(device: str, n_devices: int) -> None:
    if n_devices > 1 and not (device.startswith("cuda") and torch.cuda.device_count() >= n_devices):
        raise EngineError(
            422,
            "bad_n_devices",
            f"n_devices={n_devices} splits the model's layers across that many CUDA GPUs; "
            f"this machine has {torch.cuda.device_count()} (device {device}).",
        )


def finish_config(
    cfg_dict: dict, *, device: str, dtype: str, n_devices: int, max_context: int
) -> HookedTransformerConfig:
    """The last steps of ``get_pretrained_model_config`` (fold_ln's normalization, device,
    dtype), with the context capped: n_ctx never exceeds the cap nor the checkpoint's own."""
    d = dict(cfg_dict)
    if processing(d)["fold_ln"]:
        d["normalization_type"] = {"LN": "LNPre", "RMS": "RMSPre"}.get(
            d.get("normalization_type"), d.get("normalization_type")
        )
    d.update(init_weights=False, device=device, n_devices=n_devices, dtype=DTYPES[dtype])
    d.setdefault("default_prepend_bos", True)
    d["n_ctx"] = min(d["n_ctx"], max_context)
    return HookedTransformerConfig.from_dict(d)


def processing(cfg: dict | HookedTransformerConfig) -> dict[str, bool]:
    """``from_pretrained``'s weight processing, with the exceptions it makes: no folding for
    post-norm OLMo 2, shortformer or MoE models, no centred unembedding under a soft cap."""
    get = cfg.get if isinstance(cfg, dict) else lambda k, default=None: getattr(cfg, k, default)
    post_norm = get("original_architecture") == "Olmo2ForCausalLM"
    shortformer = get("positional_embedding_type") == "shortformer"
    soft_cap = (get("output_logits_soft_cap") or -1.0) > 0
    moe = (get("num_experts") or 0) > 1  # TransformerLens does not fold MoE norms
    return {
        "fold_ln": not (post_norm or shortformer or moe),
        "center_writing_weights": not (post_norm or shortformer),
        "center_unembed": not (shortformer or soft_cap),
        "fold_value_biases": True,
    }


def _cached_snapshot(name: str) -> Path | None:
    """The local Hugging Face cache's snapshot of a repository TransformerLens has no name for."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repository id
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def plan_load(
    name_or_dir: str,
    *,
    device: str,
    dtype: str,
    n_devices: int = 1,
    max_context: int,
    hash_weights: bool = True,
) -> Plan:
    """Resolve `name_or_dir` and build its config; nothing but config.json is read (and the
    weight files' hash when `hash_weights`)."""
    if dtype not in DTYPES:
        raise EngineError(422, "bad_dtype", f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    _check_devices(device, n_devices)
    local = Path(name_or_dir).expanduser()
    if not is_local_model_dir(name_or_dir):
        try:
            tl_loading.get_official_model_name(name_or_dir)
        except ValueError:
            local = _cached_snapshot(name_or_dir) or local
    if (local / "config.json").is_file():
        ref = str(local.resolve())
        hf = AutoConfig.from_pretrained(ref)
        display = Path(ref).name if Path(name_or_dir).expanduser().exists() else name_or_dir
        version = weights_hash(Path(ref)) if hash_weights else ""
        plan = Plan(ref, "local", display, version, hf, None)
        plan.model_max_context = hf_config.max_context(hf)
        try:
            cfg_dict = hf_config.config_dict(hf, Path(ref))
        except hf_config.Unsupported as e:
            plan.why_bridge = str(e)
            return plan
    else:
        ref, version = resolve_hub_name(name_or_dir)
        plan = Plan(ref, "hub", ref, version, None, None)
        try:
            cfg_dict = dict(tl_loading.get_pretrained_model_config(ref, fold_ln=False).to_dict())
        except NotImplementedError as e:
            raise EngineError(422, "unsupported_architecture", str(e)) from None
        plan.model_max_context = cfg_dict["n_ctx"]
    plan.cfg = finish_config(
        cfg_dict, device=device, dtype=dtype, n_devices=n_devices, max_context=max_context
    )
    return plan


def _state_dict(
    plan: Plan, cfg: HookedTransformerConfig
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """TransformerLens's conversion of the checkpoint's weights (chosen by cfg's architecture,
    never by name), with a learned position table cut to the context cap; and for a local
    directory the Hugging Face model's log-probabilities on the probe, to check against."""
    hf_model, reference = None, None
    if plan.local:
        hf_model = AutoModelForCausalLM.from_pretrained(plan.ref, dtype=cfg.dtype).eval()
        with torch.inference_mode():
            reference = check.logprobs(hf_model(check.probe(cfg.d_vocab, cfg.n_ctx)).logits)
    try:
        state = converted_state_dict(plan.ref, cfg, hf_model)
    except (NotImplementedError, ValueError) as e:
        raise EngineError(422, "unsupported_architecture", str(e)) from None
    return state, reference


def converted_state_dict(
    ref: str, cfg: HookedTransformerConfig, hf_model=None
) -> dict[str, torch.Tensor]:
    """TransformerLens's conversion of `ref`'s weights into `cfg`'s layout (`hf_model`: the
    Hugging Face model of a local directory), with a learned position table cut to ``n_ctx``.
    Figure-bundle snippets run this function's source too (components/bundles.py)."""
    state = tl_loading.get_pretrained_state_dict(ref, cfg, hf_model, dtype=cfg.dtype)
    if "pos_embed.W_pos" in state:
        state["pos_embed.W_pos"] = state["pos_embed.W_pos"][: cfg.n_ctx]
    return state


def local_tokenizer(model_dir: str, cfg: HookedTransformerConfig):
    """A local directory's tokenizer, adding BOS unless its architecture has none."""
    add_bos = cfg.original_architecture not in NO_BOS_TOKEN
    return AutoTokenizer.from_pretrained(model_dir, add_bos_token=add_bos)


def _tokenizer(plan: Plan, cfg: HookedTransformerConfig):
    if not plan.local:
        return None  # HookedTransformer loads it from cfg.tokenizer_name, as from_pretrained
    return local_tokenizer(plan.ref, cfg)


def build_hooked(plan: Plan) -> HookedTransformer:
    """The HookedTransformer of `plan`; ``Unsupported`` when its outputs on the probe differ
    from the Hugging Face model's (a conversion that would serve wrong numbers)."""
    cfg = plan.cfg
    state, reference = _state_dict(plan, cfg)
    model = HookedTransformer(
        cfg, _tokenizer(plan, cfg), move_to_device=False, default_padding_side="right"
    )
    box = [state]
    del state  # the box holds the only reference: load_processed frees copies as it goes
    gc.collect()  # the Hugging Face model is in reference cycles: free it before processing
    weights.load_processed(model, box, processing(cfg))
    model.move_model_modules_to_device()
    model.eval()
    forward_layout(model)  # before the check: what it compares is what the engine will run
    if reference is not None:
        probe = check.probe(cfg.d_vocab, cfg.n_ctx).to(cfg.device)
        with torch.inference_mode():
            gap = check.gap(reference, model(probe))
        if gap > check.tolerance(cfg.dtype):
            raise hf_config.Unsupported(
                f"HookedTransformer's conversion of {cfg.original_architecture} differs from "
                f"the Hugging Face model by {gap:.3g} nats on a probe"
            )
    return model


def fit_context(
    plan: Plan, device: str, cap: int, explicit: bool, budget: memory.Budget = memory.Budget()
) -> MemoryEstimate:
    """The memory estimate of `plan` at its cap. A default cap that does not fit is lowered
    to the longest that does (at least MIN_AUTO_CONTEXT tokens); one the user set is kept
    (and refused by ``memory.refuse_if_too_large`` with the cap that would fit)."""
    est = memory.estimate(plan.cfg, device, budget=budget)
    if not est.fits and not explicit:
        shorter = memory.largest_context_that_fits(plan.cfg, est.available_bytes)
        if shorter >= MIN_AUTO_CONTEXT:
            plan.cfg = HookedTransformerConfig.from_dict({**plan.cfg.to_dict(), "n_ctx": shorter})
            est = memory.estimate(plan.cfg, device, budget=budget)
    return est


def notes_for(est: MemoryEstimate, plan: Plan, cap: int) -> list[str]:
    notes = []
    if est.slow_on_cpu:
        notes.append(
            f"{est.params / 1e6:,.0f}M parameters on CPU: each new prompt takes seconds; "
            "a GPU (--device cuda) is much faster."
        )
    if plan.model_max_context and plan.model_max_context > est.n_ctx:
        lowered = (
            f", lowered from {cap} so that a prompt that long fits in memory"
            if est.n_ctx < min(cap, plan.model_max_context)
            else ""
        )
        notes.append(
            f"Context capped at {est.n_ctx} tokens (the checkpoint allows "
            f"{plan.model_max_context}{lowered}); max_context sets it."
        )
    return notes


def estimate_load(
    name_or_dir: str,
    *,
    device: str | None = None,
    dtype: str = "float32",
    max_context: int | None = None,
    n_devices: int = 1,
    budget: memory.Budget = memory.Budget(),
) -> LoadEstimate:
    """What loading `name_or_dir` would take, from its config alone: the path it would take,
    its context cap and the memory estimate (shown before loading); `budget`: what the
    models already loaded leave."""
    device = pick_device(device)
    cap = max_context or default_max_context(device)
    plan = plan_load(
        name_or_dir, device=device, dtype=dtype, n_devices=n_devices, max_context=cap,
        hash_weights=False,
    )  # fmt: skip
    if plan.cfg is None:
        from engine import bridge

        n_ctx = min(cap, plan.model_max_context or cap)
        est = bridge.estimate(plan.hf, device, DTYPES[dtype], n_ctx, budget)
    else:
        est = fit_context(plan, device, cap, explicit=max_context is not None, budget=budget)
    return LoadEstimate(
        name=plan.display,
        path="hooked" if plan.cfg is not None else "bridge",
        why_bridge=plan.why_bridge,
        n_ctx=est.n_ctx,
        model_max_context=plan.model_max_context,
        memory=est.model_dump(),
        summary=est.summary(),
        notes=notes_for(est, plan, cap),
    )


def load_model(
    name_or_dir: str,
    *,
    device: str | None = None,
    dtype: str = "float32",
    max_context: int | None = None,
    n_devices: int = 1,
    budget: memory.Budget = memory.Budget(),
) -> LoadedModel:
    """Load `name_or_dir` the way ``HookedTransformer.from_pretrained`` does, or through
    TransformerBridge when HookedTransformer cannot represent its architecture."""
    t0 = time.perf_counter()
    device = pick_device(device)
    cap = max_context or default_max_context(device)
    plan = plan_load(name_or_dir, device=device, dtype=dtype, n_devices=n_devices, max_context=cap)
    model = None
    if plan.cfg is not None:
        est = fit_context(plan, device, cap, explicit=max_context is not None, budget=budget)
        memory.refuse_if_too_large(est, plan.cfg, plan.display)
        try:
            model, unavailable, path = build_hooked(plan), {}, "hooked"
        except hf_config.Unsupported as e:
            log.warning("%s: %s; loading through TransformerBridge", plan.display, e)
            plan.why_bridge, plan.cfg = str(e), None
    if model is None:
        from engine import bridge

        model, est, unavailable = bridge.load(
            plan, device=device, dtype=DTYPES[dtype], cap=cap, budget=budget
        )
        path = "bridge"
    seconds = time.perf_counter() - t0
    log.info("loaded %s (%s, %s) on %s in %.2f s", plan.display, plan.source, path, device, seconds)
    return LoadedModel(
        model=model,
        name=plan.display,
        source=plan.source,
        fingerprint=f"{plan.display}@{plan.version}:{dtype}",
        device=device,
        dtype=dtype,
        load_seconds=seconds,
        local_dir=Path(plan.ref) if plan.local else None,
        path=path,
        model_max_context=plan.model_max_context,
        memory=est,
        notes=notes_for(est, plan, cap),
        unavailable=unavailable,
    )
