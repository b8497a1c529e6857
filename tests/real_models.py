"""Tiny random-weight models of real architectures, saved as local Hugging Face directories.

Each family's config has the fields a real checkpoint of that family has (GQA, rope theta and
scaling, soft caps, sliding windows, a context of 131072, no legacy ``n_ctx``), shrunk to 2
layers and d_model 64. The tokenizer is the demo organism's, so the vocabulary matches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    Qwen2Config,
    StableLmConfig,
)

from engine.settings import DEFAULT_MODEL_DIR

VOCAB = 1186  # the organism tokenizer's
SMALL = dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128)
TOKENS = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=1, pad_token_id=0)


def gpt2() -> PretrainedConfig:
    """A GPT-2 config as transformers writes it today: ``n_positions`` and no ``n_ctx``."""
    return GPT2Config(n_positions=256, n_embd=64, n_layer=2, n_head=4, n_inner=96, **TOKENS)


def pythia() -> PretrainedConfig:
    return GPTNeoXConfig(
        **SMALL, max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000,
        use_parallel_residual=True, **TOKENS,
    )  # fmt: skip


def llama3() -> PretrainedConfig:
    """Llama-3.2-1B's shape of config: 131072 positions, rope theta 500000, llama3 scaling."""
    return LlamaConfig(
        **SMALL, num_key_value_heads=2, max_position_embeddings=131072, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        tie_word_embeddings=True, **TOKENS,
    )  # fmt: skip


def gemma2() -> PretrainedConfig:
    """Gemma-2's config: head_dim apart from d_model / heads, soft caps, a sliding window
    short enough that test prompts cross it, query_pre_attn_scalar != head_dim."""
    return Gemma2Config(
        **SMALL, num_key_value_heads=2, head_dim=32, max_position_embeddings=8192,
        sliding_window=6, query_pre_attn_scalar=24, attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0, **TOKENS,
    )  # fmt: skip


def gemma3() -> PretrainedConfig:
    """Gemma-3 (text): q/k norms, 5 sliding layers to 1 global (here 1 to 1), a local rope
    base apart from the global one, linear rope scaling on the global layers (as 4B+)."""
    config = Gemma3TextConfig(
        **SMALL, num_key_value_heads=2, head_dim=32, max_position_embeddings=32768,
        sliding_window=6, sliding_window_pattern=2, query_pre_attn_scalar=24,
        rope_theta=1000000.0, rope_local_base_freq=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 8.0}, **TOKENS,
    )  # fmt: skip
    config.architectures = ["Gemma3ForCausalLM"]
    return config


def qwen2() -> PretrainedConfig:
    return Qwen2Config(
        **SMALL, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0,
        tie_word_embeddings=False, **TOKENS,
    )  # fmt: skip


def mistral() -> PretrainedConfig:
    return MistralConfig(
        **SMALL, num_key_value_heads=2, max_position_embeddings=32768, sliding_window=None,
        rope_theta=1000000.0, **TOKENS,
    )  # fmt: skip


def stablelm() -> PretrainedConfig:
    """An architecture HookedTransformer has no conversion for (TransformerBridge has)."""
    return StableLmConfig(
        **SMALL, num_key_value_heads=4, max_position_embeddings=4096, partial_rotary_factor=0.25,
        **TOKENS,
    )  # fmt: skip


FAMILIES: dict[str, Callable[[], PretrainedConfig]] = {
    "gpt2": gpt2,
    "pythia": pythia,
    "llama": llama3,
    "gemma2": gemma2,
    "gemma3": gemma3,
    "qwen2": qwen2,
    "mistral": mistral,
}


def save_model(config: PretrainedConfig, out_dir: Path, *, seed: int = 0) -> Path:
    """A random-weight model of `config` with the organism's tokenizer, saved in `out_dir`.

    Biases and norm weights are random too (transformers initialises them to 0 and 1), so a
    loader that drops a bias or mis-folds a norm shows it."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
            elif "norm" in name and name.endswith("weight"):
                p.add_(torch.empty_like(p).uniform_(-0.5, 0.5))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok = AutoTokenizer.from_pretrained(str(DEFAULT_MODEL_DIR))
    tok.model_max_length = 1 << 20
    tok.save_pretrained(str(out_dir))
    return out_dir
