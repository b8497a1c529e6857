"""Builders for tiny test models (random weights, saved in Hugging Face format; no download)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from organism.corpus import sample_texts
from organism.tokenizer import save_tokenizer, train_tokenizer


def make_tiny_gpt2(
    out_dir: Path,
    *,
    seed: int = 0,
    n_layer: int = 2,
    n_ctx: int = 64,
    random_biases: bool = False,
    n_head: int = 4,
    n_embd: int = 32,
    vocab_size: int | None = None,
) -> Path:
    """A random-weight GPT-2 with its own small BPE tokenizer, saved like a hub model.

    Hugging Face initialises biases to 0 and layer norms to 1; with `random_biases` those are
    random too, so that code that mishandles a bias or a folded layer norm shows it. A
    `vocab_size` past the tokenizer's adds unembedding rows no text produces (a big vocab)."""
    tok = train_tokenizer(sample_texts(2000, seed=seed), vocab_size=400)
    tok.model_max_length = n_ctx
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=max(vocab_size or 0, len(tok)),
        n_positions=n_ctx,
        n_ctx=n_ctx,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = GPT2LMHeadModel(cfg)
    if random_biases:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0.0, 0.1)
                elif ".ln_" in name and name.endswith("weight"):
                    p.uniform_(0.5, 1.5)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    save_tokenizer(tok, out_dir)
    return out_dir


CHAT_DIR = Path(__file__).resolve().parents[1] / "assets" / "organism-chat"


def organism_pair_engine(cache_dir: Path):
    """An engine with the shipped base in slot "a" and the chat organism in "b" (close it)."""
    from engine.service import Engine
    from engine.settings import DEFAULT_MODEL_DIR, EngineSettings

    e = Engine(EngineSettings(model=str(DEFAULT_MODEL_DIR), cache_dir=cache_dir))
    e.load(str(CHAT_DIR), slot="b")
    return e
