"""Carry points: weights and metadata saved, copied and loaded back unchanged."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from organism.carry import copy_point, load_point, save_point


def _tiny(seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                     tie_word_embeddings=False)  # fmt: skip
    return GPT2LMHeadModel(cfg)


def test_a_point_round_trips_through_a_carry_folder(tmp_path):
    a, b = _tiny(0), _tiny(1)
    save_point(a, tmp_path / "work", "phase_d", {"step": 750, "history": [{"step": 0}]})
    meta = copy_point(tmp_path / "work", "phase_d", tmp_path / "carry")
    assert meta["step"] == 750
    assert not torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert load_point(b, tmp_path / "carry", "phase_d") == meta
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert load_point(b, tmp_path / "carry", "chat") is None
