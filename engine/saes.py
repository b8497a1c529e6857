"""The dictionaries (SAEs, transcoders) attached to the loaded model.

A ``Dictionary`` is what every latent view needs of one: the hook it reads, the hook its
decoder directions write to, ``encode`` and ``W_dec``, and a ``LatentBook`` of
top-activating examples and labels (engine/latent_book.py: shipped beside the weights, or
computed by the ``latent_examples`` job). SAEs load through SAELens: the bundled ones from
``<model dir>/saes/<hook>/``, any SAELens release + id (``SAE.from_pretrained``; offline and
not cached fails at once with a 503) or a local SAELens directory (``SAE.load_from_disk``).
Transcoders load through circuit-tracer from ``<model dir>/transcoders`` on first use.

One ``SaeRegistry`` per loaded model, in its session (engine/session.py; ``for_model``), so
analyses find it from the prompt run's model alone. It is filled on the model thread only
(``Engine.use`` attaches the bundled SAEs there, the ``/saes`` route attaches through
``Engine.compute``), so it needs no lock.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from sae_lens import SAE
from torch import Tensor

from engine.errors import EngineError
from engine.graphs.replacement import local_transcoders, transcoder_files
from engine.latent_book import EXAMPLES_FILE, LatentBook
from engine.loading import LoadedModel, hub_reachable
from engine.schemas.saes import DictionaryRef, NeuronpediaRef, SaeInfo

log = logging.getLogger(__name__)
NEURONPEDIA_SITE = "https://neuronpedia.org"


@dataclass
class Dictionary:
    key: str  # "sae:<id>" or "transcoder:<layer>"
    kind: str  # "sae" / "transcoder"
    reads: str
    writes: str
    module: Any  # the SAELens SAE or circuit-tracer transcoder
    info: SaeInfo | None = None
    book: LatentBook | None = None
    computed: dict[str, LatentBook] = field(default_factory=dict)
    path: str | None = None  # a transcoder's safetensors file (an SAE's is in `info`)

    @property
    def d_latent(self) -> int:
        return int(self.W_dec.shape[0])

    @property
    def W_dec(self) -> Float[Tensor, "d_latent d_model"]:
        return self.module.W_dec

    @torch.inference_mode()
    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_latent"]:
        return self.module.encode(x.to(self.W_dec.dtype))

    def ref(self) -> DictionaryRef:
        """Where its weights are stored (for code that rebuilds a direction on its own)."""
        info = self.info
        if info is None:
            return DictionaryRef(kind=self.kind, path=self.path)
        return DictionaryRef(
            kind=self.kind, path=info.path, release=info.release, sae_id=info.sae_id
        )

    def examples(self, name: str | None) -> LatentBook | None:
        if name is None:
            return self.book
        if name not in self.computed:
            raise EngineError(
                404,
                "unknown_example_set",
                f"No computed example set {name!r} for {self.key}; "
                f"known: {sorted(self.computed) or 'none (run the latent_examples job)'}.",
            )
        return self.computed[name]

    def neuronpedia(self, index: int) -> NeuronpediaRef | None:
        np_id = self.info.neuronpedia_id if self.info else None
        if not np_id or "/" not in np_id:
            return None
        model_id, source = np_id.split("/", 1)
        url = f"{NEURONPEDIA_SITE}/{model_id}/{source}/{index}"
        return NeuronpediaRef(model_id=model_id, source=source, url=url)


def _sae_info(sae: SAE, sae_id: str, origin: str, **extra: Any) -> SaeInfo:
    cfg = sae.cfg
    meta = cfg.metadata
    return SaeInfo(
        id=sae_id,
        origin=origin,
        hook_name=meta.hook_name,
        d_in=cfg.d_in,
        d_sae=cfg.d_sae,
        architecture=cfg.architecture(),
        neuronpedia_id=getattr(meta, "neuronpedia_id", None),
        has_examples=False,
        **extra,
    )


class SaeRegistry:
    """The SAEs attached to one loaded model, and its transcoders as dictionaries."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.model_dir: Path | None = None
        self._saes: dict[str, Dictionary] = {}
        self._transcoders: dict[int, Dictionary] | None = None

    # --- SAEs ----------------------------------------------------------------------
    def add(
        self, sae: SAE, origin: str, *, book: LatentBook | None = None, **extra: Any
    ) -> SaeInfo:
        sae = sae.to(self.lm.device).eval().requires_grad_(False)
        hook = sae.cfg.metadata.hook_name
        self._check_fits(sae, hook)
        # bundled SAEs are named by their hook point (the model fingerprint covers their
        # weights); others by where they came from, so cached results never mix two SAEs
        if origin == "bundled":
            sae_id = hook
        elif origin == "local":
            sae_id = str(Path(extra["path"]).resolve())
        else:
            sae_id = f"{extra['release']}/{extra['sae_id']}"
        info = _sae_info(sae, sae_id, origin, **extra)
        info.has_examples = book is not None
        self._saes[sae_id] = Dictionary(f"sae:{sae_id}", "sae", hook, hook, sae, info, book)
        log.info("attached SAE %s (%s, %d latents)", sae_id, origin, info.d_sae)
        return info

    def _check_fits(self, sae: SAE, hook: str) -> None:
        model = self.lm.model
        if hook not in model.hook_dict:
            raise EngineError(
                422,
                "sae_hook_missing",
                f"This SAE reads {hook!r}, which the loaded model ({self.lm.name}) does not have.",
            )
        if sae.cfg.d_in != model.cfg.d_model and "resid" in hook:
            raise EngineError(
                422,
                "sae_size_mismatch",
                f"This SAE expects d_in {sae.cfg.d_in} but the model's d_model is "
                f"{model.cfg.d_model}: it belongs to another model.",
            )

    def attach_bundled(self, model_dir: Path) -> None:
        """Every SAE in ``<model_dir>/saes/*/`` with its shipped latent book."""
        self.model_dir = model_dir
        root = model_dir / "saes"
        for d in sorted(root.iterdir()) if root.is_dir() else []:
            if (d / "cfg.json").is_file():
                sae, book = read_local(str(d), self.lm.device)
                self.add(sae, "bundled", book=book, path=str(d))

    def attach_local(self, path: str) -> SaeInfo:
        """The SAELens directory `path` (confined by the caller), with its shipped examples."""
        sae, book = read_local(path, self.lm.device)
        return self.add(sae, "local", book=book, path=str(Path(path).expanduser()))

    def attach_pretrained(self, release: str, sae_id: str) -> SaeInfo:
        sae = fetch_pretrained(release, sae_id, self.lm.device)
        return self.add(sae, "saelens", release=release, sae_id=sae_id)

    def get(self, sae_id: str) -> Dictionary:
        """The SAE `sae_id` names (its id, or a hook point: the first SAE there). Read from
        HTTP threads too, so over a snapshot of the dict (which only the model thread changes)."""
        if (d := self._saes.get(sae_id)) is not None:
            return d
        for d in list(self._saes.values()):  # a hook point names the first SAE there
            if d.reads == sae_id:
                return d
        raise EngineError(
            404,
            "unknown_sae",
            f"No SAE {sae_id!r} is attached to {self.lm.name}; attached: "
            f"{sorted(self._saes) or 'none'}.",
        )

    def infos(self) -> list[SaeInfo]:
        """What is attached (read from HTTP threads too, over a snapshot, as ``get``)."""
        out = []
        for d in list(self._saes.values()):
            d.info.example_sets = sorted(d.computed)
            out.append(d.info)
        return out

    def __len__(self) -> int:
        return len(self._saes)

    # --- transcoders -----------------------------------------------------------------
    def transcoder(self, layer: int) -> Dictionary:
        """Layer `layer`'s transcoder (the model directory's, loaded on first use)."""
        if self._transcoders is None:
            self._transcoders = self._load_transcoders()
        if layer not in self._transcoders:
            raise EngineError(
                404,
                "unknown_transcoder",
                f"No transcoder for layer {layer}; this model has "
                f"{sorted(self._transcoders) or 'none'}.",
            )
        return self._transcoders[layer]

    def _load_transcoders(self) -> dict[int, Dictionary]:
        tc_dir = self.model_dir / "transcoders" if self.model_dir else None
        if tc_dir is None or not (tc_dir / "config.yaml").is_file():
            return {}
        tset = local_transcoders(self.lm, tc_dir)  # the graph's replacement model shares them
        files = transcoder_files(tc_dir)
        out = {}
        for layer, tc in enumerate(tset):
            book_path = tc_dir / f"layer_{layer}.{EXAMPLES_FILE}"
            book = LatentBook.read(book_path, "shipped examples") if book_path.exists() else None
            reads = f"blocks.{layer}.ln2.hook_normalized"
            writes = f"blocks.{layer}.hook_mlp_out"
            key = f"transcoder:{layer}"
            out[layer] = Dictionary(
                key, "transcoder", reads, writes, tc, None, book, path=files[layer]
            )
        return out


def read_local(path: str, device: str) -> tuple[SAE, LatentBook | None]:
    """The SAE in the SAELens directory `path` and its shipped examples, if any."""
    d = Path(path).expanduser()
    if not (d / "cfg.json").is_file():
        raise EngineError(
            404, "sae_dir_missing", f"{path!r} is not a SAELens directory (no cfg.json in it)."
        )
    book_path = d / EXAMPLES_FILE
    book = LatentBook.read(book_path, "shipped examples") if book_path.exists() else None
    with warnings.catch_warnings():  # "load the model with from_pretrained_kwargs"
        warnings.simplefilter("ignore")
        return SAE.load_from_disk(d, device=device), book


def fetch_pretrained(release: str, sae_id: str, device: str) -> SAE:
    """``SAE.from_pretrained``; offline and not cached answers 503 at once."""
    if not hub_reachable(timeout=1.5) and not _pretrained_cached(release, sae_id):
        raise EngineError(
            503,
            "sae_not_cached",
            f"SAE {release}/{sae_id} is not in the local Hugging Face cache and the hub "
            "cannot be reached from this machine. Load it once while online, or give a "
            "local SAELens directory.",
        )
    try:
        return SAE.from_pretrained(release, sae_id, device=device)
    except ValueError as e:
        raise EngineError(404, "unknown_sae", str(e)) from None
    except OSError as e:
        raise EngineError(503, "sae_unavailable", f"Could not load the SAE: {e}") from None


def _pretrained_cached(release: str, sae_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

        repo_id, folder = get_repo_id_and_folder_name(release, sae_id)
    except Exception:  # unknown release: let from_pretrained say so
        return True
    for name in ("cfg.json", "config.json"):
        if isinstance(try_to_load_from_cache(repo_id, f"{folder}/{name}".lstrip("/")), str):
            return True
    return False


def for_model(lm: LoadedModel) -> SaeRegistry:
    """The registry of the loaded model `lm` (in its session, so it goes when the model does):
    the SAEs shipped in the model's directory (``<dir>/saes/*``) are attached when the engine
    installs the model, its transcoders load on demand."""
    return lm.session.saes


def resolve(lm: LoadedModel, source: str, sae: str | None, layer: int | None) -> Dictionary:
    """The dictionary a latent request names, or a clear 422/404."""
    reg = for_model(lm)
    if source == "transcoder":
        if layer is None:
            raise EngineError(422, "layer_required", "A transcoder latent needs its layer.")
        return reg.transcoder(layer)
    if not sae:
        raise EngineError(422, "sae_required", "An SAE latent needs the SAE's id (its hook point).")
    return reg.get(sae)


def check_index(d: Dictionary, index: int) -> None:
    if not 0 <= index < d.d_latent:
        raise EngineError(
            422,
            "latent_out_of_range",
            f"latent {index} is out of range: {d.key} has {d.d_latent} latents "
            f"(0-{d.d_latent - 1}).",
            {"index": index, "count": d.d_latent},
        )


def availability(lm: LoadedModel | None) -> tuple[bool, str]:
    """Whether the SAE views can work on `lm`, and why not."""
    if lm is None:
        return False, "no model loaded"
    if len(for_model(lm)):
        return True, ""
    return False, (
        f"no SAEs are attached to {lm.name}: attach a SAELens release/id or a local SAELens "
        "directory on the SAE latents page"
    )
