"""The Probes view's pure figure builders and setup on a made-up sweep result."""

from __future__ import annotations

import pytest

from components import probe_figures as pf
from components import probe_setup
from components.theme import presenter_copy
from engine.schemas.probes import ProbeSweepResult


def m(acc: float, auc: float) -> dict:
    return {"accuracy": acc, "auroc": auc, "train_accuracy": 1.0}


def result(every: bool = False) -> ProbeSweepResult:
    hooks = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"]
    positions = [1, 2] if every else [None]
    rows = []
    for i, h in enumerate(hooks):
        for p in positions:
            lat = None
            if h != hooks[0]:  # an SAE reads the last two: it wins at one, loses at the other
                auc = 0.95 if i == 1 else 0.7
                lat = {**m(0.9, auc), "sae": "s", "index": 7, "sign": -1}
            rows.append({"hook": h, "position": p, "diff_of_means": m(0.6, 0.6 + 0.1 * i),
                         "logistic_probe": m(0.7 + 0.1 * i, 0.8 + 0.05 * i),
                         "shuffled": m(0.5, 0.45), "sae_latent": lat})  # fmt: skip
    return ProbeSweepResult.model_validate(
        {"hooks": hooks, "results": rows, "position": "every" if every else "last",
         "pattern": None, "positions": positions if every else None,
         "position_tokens": [" a", " b"] if every else None, "n_positive": 10,
         "n_negative": 10, "n_train": 14, "n_test": 6, "n_dropped": 0, "sweep": "s",
         "cached": False, "model": "m", "best_hook": hooks[-1], "wins": {}}
    )  # fmt: skip


def test_layer_curve_draws_each_scorer_in_both_panels():
    fig = pf.layer_curve(result())
    names = [(t.name, t.xaxis) for t in fig.data]
    assert ("logistic probe", "x") in names and ("logistic probe", "x2") in names
    sae = [t for t in fig.data if t.name == "best single SAE latent" and t.xaxis == "x2"][0]
    assert list(sae.y) == [None, 0.95, 0.7]  # no SAE at the first hook point
    probe = [t for t in fig.data if t.name == "logistic probe" and t.xaxis == "x"][0]
    assert list(probe.y) == pytest.approx([0.7, 0.8, 0.9]) and list(probe.x)[0] == "L0 resid_pre"
    assert fig.layout.yaxis.title.text == "held-out accuracy"
    assert presenter_copy(fig).layout.height > fig.layout.height


def test_verdict_says_which_wins():
    lines = pf.verdict(result())
    assert lines[0].startswith("Best probe: blocks.1.hook_resid_post")
    # probe AUROC 0.85 < latent 0.95 at L1 pre, 0.9 > 0.7 at L1 post: one each
    assert "neither wins" in lines[1] and "probe higher AUROC at 1" in lines[1]
    assert "reads the labels" in lines[2]
    r = result()
    r.results[2].sae_latent.auroc = 0.99
    assert "the best SAE latent wins" in pf.verdict(r)[1]
    for row in r.results:
        row.sae_latent = None
    assert "No SAE" in pf.verdict(r)[1]


def test_heatmap_is_hook_by_position():
    r = result(every=True)
    fig = pf.position_heatmap(r, scorer="diff_of_means", metric="auroc")
    z = fig.data[0].z
    assert len(z) == 3 and len(z[0]) == 2
    assert [round(v, 3) for v in (z[0][0], z[1][1], z[2][0])] == [0.6, 0.7, 0.8]
    assert [x.split()[0] for x in fig.data[0].x] == ["1", "2"]  # the position, then its token
    assert [row["hook"] for row in pf.table_rows(r, 2)] == r.hooks


def test_form_to_job_parameters():
    form = {"source": "typed", "positive": "a\n\n b \n", "negative": "c", "rule": "tokens matching",
            "pattern": "x", "heldout": 0.3, "seed": 2, "hooks": []}  # fmt: skip
    p = probe_setup.params(form)
    assert p == {"position": "match", "pattern": "x", "heldout_fraction": 0.3, "seed": 2,
                 "hooks": None, "positive": ["a", " b "], "negative": ["c"]}  # fmt: skip
    form |= {"source": "dataset", "dataset": "d.csv", "split": "train", "column": "t",
             "label_column": "y", "positive_label": "", "rule": "last token"}  # fmt: skip
    p = probe_setup.params(form)
    assert p["dataset"] == "d.csv" and p["positive_label"] is None and "positive" not in p
    assert probe_setup.residual_hooks(2)[-1] == "blocks.1.hook_resid_post"
