"""Figure bundles: one zip with the image (PNG 3x, SVG), the data behind it, and a snippet.

A view describes its figure's data as named arrays (``Array``: dimension names and nested
lists) plus the analysis-specific part of a Python snippet that recomputes them
(``BundleSpec``). ``snippet`` puts the model loading in front of that part, loading the model
the way the engine does (engine/loading.py), so the snippet runs on its own and defines a
``data`` dict with the same arrays. ``make_zip`` writes the bundle: images, data.json, one
CSV per array (long format: one row per cell), snippet.py and a README.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.engine_source import engine_source


@dataclass(frozen=True)
class Array:
    """Nested lists of numbers (None where undefined), one nesting level per dimension."""

    dims: tuple[str, ...]
    values: list


@dataclass
class BundleSpec:
    """What a figure's bundle holds besides its image."""

    data: dict[str, Array]
    code: str  # snippet body: runs after `model`, `tokens`, `logits`, `cache` exist
    labels: dict[str, list[str]] = field(default_factory=dict)  # dimension -> label per index
    packages: tuple[str, ...] = ("transformer_lens",)


@dataclass(frozen=True)
class ModelRef:
    """How a snippet loads the model: a local Hugging Face directory or a hub name."""

    ref: str
    local: bool
    dtype: str = "float32"
    n_ctx: int = 2048  # the engine's context cap (a local model's snippet takes the same)

    @classmethod
    def from_info(cls, info: Any, cwd: Path | None = None) -> ModelRef:
        """From the engine's ``ModelInfo`` (or its dict)."""
        info = (info.model_dump() if hasattr(info, "model_dump") else info) or {}
        ref = info.get("ref") or info.get("name") or "gpt2-small"
        local = info.get("source") == "local"
        if local and cwd is not None:
            with contextlib.suppress(ValueError):
                ref = str(Path(ref).resolve().relative_to(cwd.resolve()))
        n_ctx = info.get("n_ctx") or cls.n_ctx
        return cls(ref=ref, local=local, dtype=info.get("dtype") or "float32", n_ctx=n_ctx)


# The engine's own loading of a local directory (its source, as the snippet runs it): the
# directory's config mapped by architecture (engine/hf_config.py), the context cap and
# TransformerLens's weight conversion and processing (engine/loading.py)
LOCAL_LOADING = (
    (
        "engine.hf_config",
        (
            "NAME_RULES", "CONTEXT_FIELDS", "Unsupported", "architecture", "max_context",
            "_rope_theta", "rope_scaling", "_head_dim", "_fix_gpt2", "_fix_neox", "_fix_llama",
            "_fix_rope", "_gemma", "_gemma2", "_gemma3", "BUILDERS", "FIXES", "_neutral_dir",
            "transformer_lens_mapping", "config_dict",
        ),
    ),
    (
        "engine.loading",
        ("DTYPES", "NO_BOS_TOKEN", "pick_device", "finish_config", "processing",
         "converted_state_dict", "local_tokenizer"),
    ),
)  # fmt: skip


def local_loading() -> str:
    """The engine's functions a local directory loads with (their source, for a snippet)."""
    return "from transformers import AutoConfig, AutoModelForCausalLM\n" + engine_source(
        *LOCAL_LOADING
    )


def load_code(model: ModelRef, var: str = "model", const: str = "MODEL") -> str:
    """The lines that load `model` into `var` as the engine loads it (a second model of a
    comparison bundle loads with ``var="model_b"``); a local directory's need the functions
    of ``local_loading()`` defined above them."""
    if model.local:
        sfx = "" if var == "model" else "_" + var
        cfg, hf, hf_model = f"cfg{sfx}", f"hf{sfx}", f"hf_model{sfx}"
        return textwrap.dedent(
            f"""

            {const} = {model.ref!r}  # a local Hugging Face directory

            # Loaded as the Interpscope engine loads it, with its functions above: the
            # directory's own config mapped by architecture, the engine's context cap,
            # TransformerLens's weight conversion and processing (LayerNorm folded, ...).
            {hf} = AutoConfig.from_pretrained({const})
            {cfg} = finish_config(
                config_dict({hf}, Path({const})), device=pick_device(), dtype={model.dtype!r},
                n_devices=1, max_context={model.n_ctx},
            )
            {hf_model} = AutoModelForCausalLM.from_pretrained({const}, dtype={cfg}.dtype).eval()
            {var} = HookedTransformer({cfg}, local_tokenizer({const}, {cfg}), default_padding_side="right")
            {var}.load_and_process_state_dict(
                converted_state_dict({const}, {cfg}, {hf_model}), **processing({cfg})
            )
            del {hf_model}"""
        )
    dtype = "" if model.dtype == "float32" else f", dtype=torch.{model.dtype}"
    return textwrap.dedent(
        f"""\
        {const} = {model.ref!r}

        # from_pretrained's defaults are the engine's processing (LayerNorm folded, ...).
        {var} = HookedTransformer.from_pretrained({const}{dtype})"""
    )


def _header(model: ModelRef, prompt: str, title: str) -> str:
    head = textwrap.dedent(
        f'''\
        """{title}: recompute the figure's data with TransformerLens."""

        from __future__ import annotations  # the engine's functions below keep their type hints

        import json

        import torch
        from transformer_lens import HookedTransformer

        PROMPT = {prompt!r}
        '''
    )
    load = (local_loading() + load_code(model)) if model.local else load_code(model)
    return (
        head
        + load
        + textwrap.dedent(
            """
        model.eval()
        torch.set_grad_enabled(False)

        tokens = model.to_tokens(PROMPT)  # [1, pos], BOS first
        logits, cache = model.run_with_cache(tokens)
        """
        )
    )


def snippet(model: ModelRef, prompt: str, spec: BundleSpec, title: str) -> str:
    """A standalone script that recomputes `spec.data` into a dict named ``data``."""
    footer = '\nif __name__ == "__main__":\n    print(json.dumps(data))\n'
    body = textwrap.dedent(spec.code).strip() + "\n"
    return _header(model, prompt, title) + "\n" + body + footer


def _cells(values: Any, depth: int) -> list[tuple[tuple[int, ...], Any]]:
    if depth == 0:
        return [((), values)]
    out = []
    for i, sub in enumerate(values):
        out += [((i, *idx), v) for idx, v in _cells(sub, depth - 1)]
    return out


def to_csv(array: Array, labels: dict[str, list[str]] | None = None) -> str:
    """Long format: one row per cell, the index along each dimension (and its label), value."""
    labels = labels or {}
    labelled = [d for d in array.dims if d in labels]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*array.dims, *(f"{d}_label" for d in labelled), "value"])
    for idx, value in _cells(array.values, len(array.dims)):
        names = [labels[d][idx[array.dims.index(d)]] for d in labelled]
        writer.writerow([*idx, *names, "" if value is None else value])
    return buf.getvalue()


def data_json(spec: BundleSpec, meta: dict) -> str:
    arrays = {k: {"dims": list(a.dims), "values": a.values} for k, a in spec.data.items()}
    return json.dumps({**meta, "labels": spec.labels, "arrays": arrays}, indent=1)


def make_zip(
    name: str, *, png: bytes, svg: bytes, spec: BundleSpec, code: str, meta: dict
) -> bytes:
    """The bundle: ``name.png``, ``name.svg``, ``data.json``, ``<array>.csv``, ``snippet.py``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}/{name}.png", png)
        z.writestr(f"{name}/{name}.svg", svg)
        z.writestr(f"{name}/data.json", data_json(spec, meta))
        for key, array in spec.data.items():
            z.writestr(f"{name}/{key}.csv", to_csv(array, spec.labels))
        z.writestr(f"{name}/snippet.py", code)
        z.writestr(f"{name}/README.txt", _readme(name, spec, meta))
    return buf.getvalue()


def _readme(name: str, spec: BundleSpec, meta: dict) -> str:
    arrays = "\n".join(f"  {k}.csv  [{' x '.join(a.dims)}]" for k, a in spec.data.items())
    return (
        f"Interpscope figure bundle: {name}\n{meta.get('caption', '')}\n\n"
        f"  {name}.png  3x raster\n  {name}.svg  vector\n  data.json  every array below, "
        f"with axis labels and the view parameters\n{arrays}\n"
        f"  snippet.py  recomputes the arrays (needs {', '.join(spec.packages)}): "
        "python snippet.py\n"
    )


def figure_bundle(
    fig,
    spec: BundleSpec,
    *,
    name: str,
    caption: str,
    params: dict,
    prompt: str,
    model_info: Any,
    cwd: Path | None = None,
) -> bytes:
    """The zip a figure's *Figure bundle* button downloads (images rendered here)."""
    from components.export import export_figure, figure_bytes

    out = export_figure(fig, caption)
    if hasattr(model_info, "model_dump"):  # the engine's ModelInfo, as the client gives it
        model_info = model_info.model_dump(mode="json")
    model = ModelRef.from_info(model_info, cwd or Path.cwd())
    meta = {"figure": name, "caption": caption, "prompt": prompt, "params": params,
            "model": model_info or {}}  # fmt: skip
    return make_zip(
        name,
        png=figure_bytes(out, "png"),
        svg=figure_bytes(out, "svg"),
        spec=spec,
        code=snippet(model, prompt, spec, title=f"Interpscope figure {name!r}"),
        meta=meta,
    )
