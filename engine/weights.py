"""Load a converted state dict into a HookedTransformer with TransformerLens's processing,
holding fewer copies of the weights than ``load_and_process_state_dict``.

TransformerLens 3.2.1 processes weights in float32 and each step (fold_ln, centring) clones
the whole state dict, while ``load_and_process_state_dict`` keeps the caller's copy alive
throughout: loading a Llama-3.2-1B shape in bfloat16 (2.8 GiB of weights) peaked past the
19.6 GiB this machine had free and was killed. Here the same ``ProcessWeights.process_weights``
runs on a dict nobody else holds (passed out of a one-element box, with explicit keywords so
that CPython hands the reference over), so an old copy is freed as soon as a step returns its
new one; the processed tensors are then loaded one at a time and dropped, as TransformerLens
does. The peak is then about two float32 copies of the weights plus the model: 14.0 bytes
per parameter in bfloat16, 16.1 in float32 (engine/memory.py).
"""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer
from transformer_lens.weight_processing import ProcessWeights

LN_KEYS = (".ln1.w", ".ln2.w", "ln_final.w")


def load_processed(model: HookedTransformer, box: list[dict[str, torch.Tensor]], flags: dict):
    """Process the state dict in `box` (emptied) with `flags` and load it into `model`, whose
    config already has the folded normalization (``loading.finish_config``)."""
    if flags["fold_ln"] and model.cfg.normalization_type in ("LN", "RMS"):
        raise ValueError("fold_ln needs the config's normalization folded first")
    state = _process(model, box, flags)
    for key in list(state):
        model.load_state_dict({key: state.pop(key)}, strict=False)
    if flags["fold_ln"]:
        model.setup()


def _process(model: HookedTransformer, box: list, flags: dict) -> dict[str, torch.Tensor]:
    fold_ln = flags["fold_ln"] and any(k.endswith(LN_KEYS) for k in box[0])
    return ProcessWeights.process_weights(
        model.fill_missing_keys(box.pop()),
        model.cfg,
        fold_ln=fold_ln,
        center_writing_weights=flags["center_writing_weights"],
        center_unembed=flags["center_unembed"],
        fold_value_biases=flags["fold_value_biases"],
    )
