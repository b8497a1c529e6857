"""A HookedTransformer config from a local Hugging Face directory's own ``config.json``.

TransformerLens 3.2.1's ``convert_hf_model_config`` picks a branch by the *name* it is given
before it reads any config: a path containing ``llama`` takes a hard-coded official config
when it matches one (a 2-layer ``Llama-3.2-1B`` directory gets 16 layers: ``IndexError``) or
an architecture branch whose ``hf_config`` was never read (``UnboundLocalError``); ``gemma``
in a path picks a Gemma generation by name (``my-gemma2`` became ``GemmaForCausalLM``).
Gemma and Gemma-2 have no branch by architecture at all, the Llama branch ignores
``rope_theta`` and rope scaling, and the GPT-2 branch reads the legacy ``n_ctx`` field.

So here the directory's config is read first and TransformerLens's mapping is reached by
architecture only: it is handed that config in a directory whose path matches none of its
name rules. What its architecture branches leave out is then set from the same config
(``FIXES``); Gemma, Gemma-2 and Gemma-3 (text), which it maps by name only, are built here
the way its official Gemma configs are. Architectures it does not know raise ``Unsupported`` (the
loader then uses TransformerBridge).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformer_lens import loading_from_pretrained as tl_loading
from transformers import PretrainedConfig

NAME_RULES = ("llama", "gemma", "wav2vec2")  # what it matches in the name it is given
CONTEXT_FIELDS = ("n_positions", "max_position_embeddings", "seq_length", "max_sequence_length")


class Unsupported(Exception):
    """HookedTransformer cannot represent this config (the reason is the message)."""


def architecture(hf: PretrainedConfig) -> str:
    archs = getattr(hf, "architectures", None) or []
    if not archs:
        raise Unsupported(f"config.json names no architecture (model_type {hf.model_type!r})")
    return archs[0]


def max_context(hf: PretrainedConfig) -> int | None:
    """The longest context the checkpoint was built for, as its config says."""
    for name in CONTEXT_FIELDS:
        value = getattr(hf, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _rope_theta(hf: PretrainedConfig, default: float = 10000.0) -> float:
    return float(tl_loading._get_rope_theta(hf, default))


def rope_scaling(hf: PretrainedConfig) -> dict[str, Any]:
    """TransformerLens fields for the config's rope scaling; refuses kinds it lacks."""
    scaling = getattr(hf, "rope_scaling", None) or {}
    kind = (scaling.get("rope_type") or scaling.get("type") or "default").lower()
    if kind == "default":
        return {}
    if kind == "llama3":
        return {
            "use_NTK_by_parts_rope": True,
            "NTK_by_parts_factor": scaling["factor"],
            "NTK_by_parts_low_freq_factor": scaling.get("low_freq_factor", 1.0),
            "NTK_by_parts_high_freq_factor": scaling.get("high_freq_factor", 4.0),
            "NTK_original_ctx_len": scaling.get("original_max_position_embeddings", 8192),
        }
    if kind == "linear":
        return {"rotary_scaling_factor": float(scaling["factor"])}
    if kind == "yarn":
        return {
            "use_yarn_rope": True,
            "yarn_factor": scaling.get("factor", 1.0),
            "yarn_attention_factor": scaling.get("attention_factor") or 1.0,
            "yarn_beta_fast": scaling.get("beta_fast", 32.0),
            "yarn_beta_slow": scaling.get("beta_slow", 1.0),
            "yarn_original_max_position_embeddings": scaling.get(
                "original_max_position_embeddings", max_context(hf)
            ),
        }
    raise Unsupported(f"rope scaling {kind!r} has no HookedTransformer equivalent")


def _head_dim(hf: PretrainedConfig) -> int:
    head_dim = getattr(hf, "head_dim", None)
    return head_dim if head_dim else hf.hidden_size // hf.num_attention_heads


def _fix_gpt2(hf: PretrainedConfig) -> dict[str, Any]:
    return {"d_mlp": hf.n_inner or 4 * hf.n_embd}


def _fix_neox(hf: PretrainedConfig) -> dict[str, Any]:
    base = getattr(hf, "rope_theta", None) or getattr(hf, "rotary_emb_base", 10000)
    return {"rotary_base": float(base), "parallel_attn_mlp": bool(hf.use_parallel_residual)}


def _fix_llama(hf: PretrainedConfig) -> dict[str, Any]:
    if getattr(hf, "attention_bias", False) or getattr(hf, "mlp_bias", False):
        raise Unsupported("its attention or MLP biases are dropped by TransformerLens's conversion")
    d_head = _head_dim(hf)
    return {
        "d_head": d_head,
        "rotary_dim": d_head,
        "rotary_base": _rope_theta(hf),
        **rope_scaling(hf),
    }


def _fix_rope(hf: PretrainedConfig) -> dict[str, Any]:
    return rope_scaling(hf)


def _gemma(hf: PretrainedConfig) -> dict[str, Any]:
    """Gemma's HookedTransformer config, as TransformerLens's official Gemma configs set it."""
    d_head = _head_dim(hf)
    return {
        "d_model": hf.hidden_size,
        "d_head": d_head,
        "n_heads": hf.num_attention_heads,
        "d_mlp": hf.intermediate_size,
        "n_layers": hf.num_hidden_layers,
        "n_ctx": hf.max_position_embeddings,
        "eps": hf.rms_norm_eps,
        "d_vocab": hf.vocab_size,
        "act_fn": getattr(hf, "hidden_activation", None) or hf.hidden_act,
        "initializer_range": hf.initializer_range,
        "normalization_type": "RMS",
        "rotary_base": _rope_theta(hf),
        "rotary_dim": d_head,
        "positional_embedding_type": "rotary",
        "use_attn_scale": True,
        "n_key_value_heads": hf.num_key_value_heads,
        "gated_mlp": True,
        "final_rms": True,
        **rope_scaling(hf),
    }


def _gemma2(hf: PretrainedConfig) -> dict[str, Any]:
    layer_types = getattr(hf, "layer_types", None) or [
        "sliding_attention" if (i + 1) % 2 else "full_attention"
        for i in range(hf.num_hidden_layers)
    ]  # transformers' default for Gemma-2: even layers slide
    return {
        **_gemma(hf),
        "attn_scale": math.sqrt(hf.query_pre_attn_scalar),
        "window_size": hf.sliding_window,
        "use_local_attn": True,
        "attn_types": ["local" if t == "sliding_attention" else "global" for t in layer_types],
        "attn_scores_soft_cap": float(hf.attn_logit_softcapping or -1.0),
        "output_logits_soft_cap": float(hf.final_logit_softcapping or -1.0),
        "use_normalization_before_and_after": True,
    }


def _gemma3(hf: PretrainedConfig) -> dict[str, Any]:
    """Gemma-3 (text): Gemma-2's layout plus q/k norms and a separate rope base for the
    sliding layers; a linear rope scaling applies to the global layers only (as in HF)."""
    return {
        **_gemma2(hf),
        "use_qk_norm": True,
        "rotary_base_local": float(getattr(hf, "rope_local_base_freq", 10000.0)),
    }


# Architectures TransformerLens maps by name only: built here from the config.
BUILDERS: dict[str, Callable[[PretrainedConfig], dict[str, Any]]] = {
    "GemmaForCausalLM": _gemma,
    "Gemma2ForCausalLM": _gemma2,
    "Gemma3ForCausalLM": _gemma3,
}
# What TransformerLens's branch for an architecture leaves out, set from the config.
FIXES: dict[str, Callable[[PretrainedConfig], dict[str, Any]]] = {
    "GPT2LMHeadModel": _fix_gpt2,
    "GPTNeoXForCausalLM": _fix_neox,
    "LlamaForCausalLM": _fix_llama,
    "MistralForCausalLM": _fix_rope,
    "Qwen2ForCausalLM": _fix_rope,
}


def _neutral_dir() -> tempfile.TemporaryDirectory:
    """A temporary directory whose path trips none of TransformerLens's name rules."""
    for _ in range(8):
        tmp = tempfile.TemporaryDirectory(prefix="interpscope-cfg-")
        if not any(rule in tmp.name.lower() for rule in NAME_RULES):
            return tmp
        tmp.cleanup()
    raise RuntimeError(f"the temporary directory path {tmp.name} contains a model-family name")


def transformer_lens_mapping(hf: PretrainedConfig) -> dict[str, Any]:
    """TransformerLens's own config mapping for `hf`, chosen by its architecture alone."""
    hf = hf.__class__.from_dict(hf.to_dict())  # a copy we may complete
    if architecture(hf) == "GPT2LMHeadModel" and getattr(hf, "n_ctx", None) is None:
        hf.n_ctx = hf.n_positions  # the branch reads the legacy field
    with _neutral_dir() as tmp:
        hf.to_json_file(str(Path(tmp) / "config.json"))
        try:
            return tl_loading.convert_hf_model_config(tmp)
        except NotImplementedError:
            raise Unsupported(
                f"TransformerLens's HookedTransformer has no conversion for {architecture(hf)}"
            ) from None


def config_dict(hf: PretrainedConfig, model_dir: Path) -> dict[str, Any]:
    """The HookedTransformerConfig fields of the model in `model_dir` (config `hf`), with the
    checkpoint's own full context as ``n_ctx``."""
    arch = architecture(hf)
    if arch in BUILDERS:
        cfg = BUILDERS[arch](hf)
    else:
        cfg = transformer_lens_mapping(hf)
        cfg.update(FIXES.get(arch, lambda _: {})(hf))
    cfg["original_architecture"] = arch
    cfg["n_ctx"] = max_context(hf) or cfg["n_ctx"]
    cfg["tokenizer_name"] = str(model_dir)
    cfg["model_name"] = model_dir.name
    return cfg
