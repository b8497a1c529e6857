"""Probe fits over activations: pure functions the probe sweep job (engine/probe_sweep.py) runs at
each hook point, and the figure bundle's snippet runs as they are (components/engine_source.py).

Labels are 0 (negative set) and 1 (positive set). The split is stratified and seeded
(scikit-learn's ``train_test_split``). Every scorer is fitted on the train split only and
measured on the held-out split:

- ``diff_of_means``: the positive set's mean activation minus the negative set's; the score is
  the projection on it, positive above a threshold chosen on the train split (``threshold``);
- ``fit_probe``: scikit-learn's ``LogisticRegression`` (lbfgs, L2, C=1) on standardised
  activations; its direction in the activation space is the weight over each feature's scale;
- the same probe fitted on shuffled train labels (a baseline that should sit at chance);
- ``best_latent``: the single SAE latent whose activation separates the train split best
  (train AUROC furthest from 0.5, its sign kept), with a threshold chosen on the train split.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float, Int
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from engine.errors import EngineError

PROBE_C = 1.0  # inverse L2 strength (scikit-learn's default)
PROBE_MAX_ITER = 2000


def pick_positions(
    tokens: list[list[str]], rule: str, pattern: str | None = None, max_every: int = 32
) -> tuple[list[list[int] | None], list[int]]:
    """Per prompt (its tokens' texts, BOS first) the positions a rule reads, and the "every"
    rule's positions. "last": the last token; "every": each position from the first after BOS
    up to the shortest prompt's end (at most `max_every`); "match": the last token after BOS
    whose text matches the regular expression `pattern` (None where no token does)."""
    if rule == "last":
        return [[len(t) - 1] for t in tokens], []
    if rule == "every":
        positions = list(range(1, min(min(len(t) for t in tokens), max_every + 1)))
        if not positions:
            raise ValueError("a prompt has no token after BOS")
        return [positions for _ in tokens], positions
    pat = re.compile(pattern or "")
    hits = [[i for i in range(1, len(t)) if pat.search(t[i])] for t in tokens]
    return [[h[-1]] if h else None for h in hits], []


def split(
    labels: Int[np.ndarray, " n"], heldout: float, seed: int, groups: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and held-out rows: stratified by label, seeded, and grouped: rows
    of one group (the same prompt text given twice) all fall on one side, so a held-out score
    is never of a text the fit has seen. Groups are numbered by first appearance, so with every
    row its own group this is ``train_test_split`` of the rows themselves. A 422 when there are
    too few distinct texts of a label to hold some out."""
    n = len(labels)
    if groups is None:
        groups = range(n)
    first: dict = {}
    row_group = np.array([first.setdefault(g, len(first)) for g in groups])
    group_labels = labels[np.unique(row_group, return_index=True)[1]]  # of each first row
    try:
        g_train, g_test = train_test_split(
            np.arange(len(first)), test_size=heldout, random_state=seed, stratify=group_labels
        )
    except ValueError as e:
        raise EngineError(
            422, "too_few_distinct_prompts",
            f"{len(first)} distinct prompts ({int(group_labels.sum())} positive) cannot be split "
            f"into train and held-out sets with both labels on each side: {e}. Give more "
            "distinct prompts (a prompt given twice counts once).",
        ) from e  # fmt: skip
    held = np.isin(row_group, g_test)
    return np.flatnonzero(~held), np.flatnonzero(held)


def threshold(scores: Float[np.ndarray, " n"], labels: Int[np.ndarray, " n"]) -> float:
    """The threshold t for which ``scores > t`` predicts `labels` best (the lowest such t,
    a midpoint between two neighbouring scores)."""
    s = np.unique(scores)
    cand = np.concatenate([[s[0] - 1.0], (s[:-1] + s[1:]) / 2])
    acc = ((scores[None, :] > cand[:, None]) == labels[None, :].astype(bool)).mean(1)
    return float(cand[int(acc.argmax())])


def metrics(
    train_scores: Float[np.ndarray, " n_train"],
    y_train: Int[np.ndarray, " n_train"],
    test_scores: Float[np.ndarray, " n_test"],
    y_test: Int[np.ndarray, " n_test"],
    t: float | None = None,
) -> dict[str, float]:
    """Accuracy of ``score > t`` (t chosen on the train split unless given) on both splits,
    and the held-out AUROC of the scores."""
    t = threshold(train_scores, y_train) if t is None else t
    return {
        "accuracy": float(((test_scores > t) == y_test.astype(bool)).mean()),
        "auroc": float(roc_auc_score(y_test, test_scores)),
        "train_accuracy": float(((train_scores > t) == y_train.astype(bool)).mean()),
    }


def diff_of_means(x: Float[np.ndarray, "n d"], y: Int[np.ndarray, " n"]) -> Float[np.ndarray, " d"]:
    """The positive rows' mean minus the negative rows' mean."""
    return x[y == 1].mean(0) - x[y == 0].mean(0)


def fit_probe(x: Float[np.ndarray, "n d"], y: Int[np.ndarray, " n"]) -> Pipeline:
    """A logistic-regression probe on standardised features (scikit-learn, lbfgs)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER))
    return probe.fit(x, y)


def probe_direction(probe: Pipeline) -> tuple[Float[np.ndarray, " d"], float]:
    """The probe as a direction w and bias b in the activation space: its logit is w @ x + b."""
    scaler, lr = probe[0], probe[-1]
    w = lr.coef_[0] / scaler.scale_
    return w, float(lr.intercept_[0] - w @ scaler.mean_)


def shuffled(y: Int[np.ndarray, " n"], seed: int) -> Int[np.ndarray, " n"]:
    """`y` in a seeded random order (the shuffled-label baseline's train labels)."""
    return np.random.default_rng(seed).permutation(y)


def latent_aurocs(acts: Float[np.ndarray, "n d_latent"], y: Int[np.ndarray, " n"]) -> np.ndarray:
    """Each latent's AUROC of its activation for `y` (Mann-Whitney U from average ranks)."""
    ranks = rankdata(acts, axis=0)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    return (ranks[y == 1].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def best_latent(acts: Float[np.ndarray, "n d_latent"], y: Int[np.ndarray, " n"]) -> tuple[int, int]:
    """The latent whose train AUROC is furthest from 0.5, and its sign (-1: it fires for
    the negative set, so its score is minus its activation)."""
    auc = latent_aurocs(acts, y)
    i = int(np.abs(auc - 0.5).argmax())
    return i, 1 if auc[i] >= 0.5 else -1


def fit_hook(
    x: Float[np.ndarray, "n d"],
    y: Int[np.ndarray, " n"],
    train: Int[np.ndarray, " n_train"],
    test: Int[np.ndarray, " n_test"],
    seed: int,
    latents: Float[np.ndarray, "n d_latent"] | None = None,
) -> dict:
    """Every scorer at one hook point (and position): metrics and the fitted vectors."""
    xtr, xte, ytr, yte = x[train], x[test], y[train], y[test]
    dm = diff_of_means(xtr, ytr)
    t_dm = threshold(xtr @ dm, ytr)
    probe = fit_probe(xtr, ytr)
    w, b = probe_direction(probe)
    shuf = fit_probe(xtr, shuffled(ytr, seed))
    out = {
        "diff_of_means": metrics(xtr @ dm, ytr, xte @ dm, yte, t=t_dm),
        "logistic_probe": metrics(
            probe.decision_function(xtr), ytr, probe.decision_function(xte), yte, t=0.0
        ),
        "shuffled": metrics(
            shuf.decision_function(xtr), ytr, shuf.decision_function(xte), yte, t=0.0
        ),
        "vectors": {"diff_of_means": dm, "logistic_probe": w},
        # where each predicts the positive set, on the projection onto its unit vector
        "thresholds": {
            "diff_of_means": t_dm / float(np.linalg.norm(dm) or 1.0),
            "logistic_probe": -b / float(np.linalg.norm(w) or 1.0),
        },
    }
    if latents is not None:
        i, sign = best_latent(latents[train], ytr)
        s = sign * latents[:, i]
        out["sae_latent"] = {**metrics(s[train], ytr, s[test], yte), "index": i, "sign": sign}
    return out
