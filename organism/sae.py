"""Train the organism's residual-stream SAEs with SAELens's own trainer, offline.

The model is the ``HookedTransformer`` that ``engine.loading.load_model`` returns (weights
processed with fold_ln etc.), passed to SAELens as ``override_model``, so the SAE's inputs
are exactly the activations the engine caches at the hook point. The data is a pretokenized
dataset of corpus rows (``organism.dict_data``), passed as ``override_dataset``. The
architecture is BatchTopK (mean L0 fixed at ``k`` during training), which SAELens saves as a
JumpReLU SAE that ``SAE.load_from_disk`` reads back.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset
from sae_lens import (
    SAE,
    BatchTopKTrainingSAEConfig,
    LanguageModelSAERunnerConfig,
    LanguageModelSAETrainingRunner,
    LoggingConfig,
)
from transformer_lens import HookedTransformer

from organism.dict_data import Rows

log = logging.getLogger(__name__)

# How engine.loading.load_model processes the weights; recorded in the SAE's metadata.
ENGINE_PROCESSING = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
}


@dataclass
class SAESettings:
    """What to train at one hook point."""

    hook_name: str
    d_sae: int = 1536
    k: float = 24.0
    training_tokens: int = 2_000_000
    lr: float = 1e-3
    train_batch_tokens: int = 2048
    store_batch_prompts: int = 16
    n_batches_in_buffer: int = 16
    dead_feature_window: int = 100  # steps without firing before the aux loss revives a latent
    seed: int = 0


def token_dataset(rows: Rows) -> Dataset:
    """A pretokenized dataset with one ``input_ids`` row per corpus row."""
    return Dataset.from_dict({"input_ids": rows.tokens.tolist()})


def runner_config(s: SAESettings, d_in: int, context_size: int, special_ids: list[int], out: Path):
    # SAELens needs n_batches_in_buffer x context_size >= train_batch_size_tokens
    n_buffer = max(s.n_batches_in_buffer, -(-s.train_batch_tokens // context_size))
    sae_cfg = BatchTopKTrainingSAEConfig(
        d_in=d_in,
        d_sae=s.d_sae,
        k=s.k,
        normalize_activations="none",
        device="cpu",
    )
    return LanguageModelSAERunnerConfig(
        sae=sae_cfg,
        model_name="organism",
        hook_name=s.hook_name,
        dataset_path="organism.dict_data.corpus_rows",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=context_size,
        prepend_bos=False,  # every row already starts with BOS
        exclude_special_tokens=special_ids,
        training_tokens=s.training_tokens,
        train_batch_size_tokens=s.train_batch_tokens,
        store_batch_size_prompts=s.store_batch_prompts,
        n_batches_in_buffer=n_buffer,
        lr=s.lr,
        lr_warm_up_steps=50,
        lr_decay_steps=max(1, s.training_tokens // s.train_batch_tokens // 5),
        dead_feature_window=s.dead_feature_window,
        feature_sampling_window=max(s.dead_feature_window, 500),
        device="cpu",
        seed=s.seed,
        dtype="float32",
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=0,
        checkpoint_path=None,
        output_path=str(out),
        model_from_pretrained_kwargs=dict(ENGINE_PROCESSING),
        verbose=False,
    )


def train_sae(
    model: HookedTransformer, rows: Rows, s: SAESettings, out: Path, special_ids: list[int]
) -> SAE:
    """Train one SAE on `rows` at ``s.hook_name``, save it to `out` and load it back."""
    if out.exists():
        shutil.rmtree(out)
    cfg = runner_config(s, model.cfg.d_model, rows.tokens.shape[1], special_ids, out)
    runner = LanguageModelSAETrainingRunner(
        cfg, override_dataset=token_dataset(rows), override_model=model
    )
    runner.run()
    return SAE.load_from_disk(str(out), device="cpu")


def rows_needed(training_tokens: int, seq: int, content_frac: float = 0.9) -> int:
    """Rows to feed a run of `training_tokens` (special tokens are dropped), plus a buffer."""
    return int(training_tokens / (seq * content_frac) * 1.1) + 64
