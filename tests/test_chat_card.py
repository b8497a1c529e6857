"""The chat card's training summary is parsed from the run's log and metadata."""

from __future__ import annotations

import json

from organism.chat_card import training_summary


def test_training_summary_reads_steps_per_second_and_wall_time(tmp_path):
    meta = {"phase": "chat", "step": 50, "data_seed": 3, "init": "x", "config": {"lr": 1e-3}}
    (tmp_path / "chat.json").write_text(json.dumps(meta))
    (tmp_path / "train.log").write_text(
        "2026-12-02 04:00:00,100 chat fine-tune from x at step 0; config {}\n"
        "2026-12-02 04:00:10,000 step 25 loss 1.0 lr 1.00e-03 0.50 steps/s (batch 1 s)\n"
        "2026-12-02 04:00:11,000 step 25 eval (1.0 s) {}\n"
        "2026-12-02 04:01:00,000 step 50 loss 0.9 lr 1.00e-03 1.50 steps/s (batch 1 s)\n"
    )
    t = training_summary(tmp_path)
    assert t["steps"] == 50 and t["data_seed"] == 3 and t["init"] == "x"
    assert t["mean_steps_per_s"] == 1.0
    assert t["wall_seconds"] == 50.0
