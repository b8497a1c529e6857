"""Probe sweep: the engine's ``probe_sweep`` job against the forward passes it needs plus the
same fits done directly (issue 15's bench: a ratio <= 1.5).

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_probes [--reps 3] [--gpt2]

Prompts: 2 x 200 organism stories cut after " felt" (happy / sad), last token, every layer's
residual stream (``blocks.{l}.hook_resid_pre`` and the last ``hook_resid_post``), 25% held out.

- direct: batches of 32 right-padded prompts (the batching the job uses), one
  ``run_with_cache`` each with a ``names_filter`` of the hooks and ``stop_at_layer`` past the last
  block (no unembedding: a probe needs none), the last token's row kept; then at each hook,
  written here with scikit-learn: the difference of means with its AUROC, a
  ``StandardScaler + LogisticRegression`` probe and the same on shuffled labels, and where an
  SAE reads the hook, its encoding and every latent's train AUROC (ranks), the best scored.
- job: the in-process engine's ``probe_sweep`` job from submit to done, its cache emptied first
  (tokenizing, batching, progress, the fits, writing the result and vectors).

Runs alternate; medians. ``--gpt2``: the same on a random model of gpt2-small's shape (12 layers,
d_model 768, the organism's tokenizer; no SAE).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import AutoTokenizer

from bench.common import ORGANISM
from engine import probe_sweep, saes
from engine.loading import LoadedModel
from engine.service import Engine
from engine.settings import EngineSettings
from organism.corpus import make_story

N, BATCH, SEED = 200, 32, 0
GPT2 = dict(
    n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, d_vocab=50257,
    act_fn="gelu_new", normalization_type="LN", original_architecture="GPT2LMHeadModel",
)  # fmt: skip


def prompts() -> tuple[list[str], list[str]]:
    out = []
    for mood, seed in (("happy", 501), ("sad", 502)):
        rng = random.Random(seed)
        stories = [make_story(rng, mood) for _ in range(N)]
        out.append([s[: s.index(" felt") + len(" felt")] for s in stories])
    return out[0], out[1]


@torch.inference_mode()
def direct(lm: LoadedModel, texts: list[str], y: np.ndarray, hooks: list[str], sae_at: dict):
    model, tok = lm.model, lm.model.tokenizer
    ids = [[tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]] for t in texts]
    acts = {h: [] for h in hooks}
    for b0 in range(0, len(ids), BATCH):
        batch = ids[b0 : b0 + BATCH]
        n = max(map(len, batch))
        tokens = torch.tensor([t + [0] * (n - len(t)) for t in batch])
        last = torch.tensor([len(t) - 1 for t in batch])
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda name: name in hooks, stop_at_layer=model.cfg.n_layers
        )
        for h in hooks:
            acts[h].append(cache[h][torch.arange(len(batch)), last].float().numpy())
    t_fwd = time.perf_counter()
    train, test = train_test_split(np.arange(len(y)), test_size=0.25, random_state=SEED, stratify=y)
    out = {}
    for h in hooks:
        x = np.concatenate(acts[h])
        xtr, xte, ytr, yte = x[train], x[test], y[train], y[test]
        d = xtr[ytr == 1].mean(0) - xtr[ytr == 0].mean(0)
        auc_dm = roc_auc_score(yte, xte @ d)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(xtr, ytr)
        shuf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        shuf.fit(xtr, np.random.default_rng(SEED).permutation(ytr))
        out[h] = [auc_dm, probe.score(xte, yte), shuf.score(xte, yte)]
        if h in sae_at:
            z = sae_at[h].encode(torch.from_numpy(x)).float().numpy()
            ranks = rankdata(z[train], axis=0)
            n1 = ytr.sum()
            auc = (ranks[ytr == 1].sum(0) - n1 * (n1 + 1) / 2) / (n1 * (len(ytr) - n1))
            i = int(np.abs(auc - 0.5).argmax())
            out[h].append(roc_auc_score(yte, z[test, i]))
    return out, t_fwd


def job(eng: Engine, pos: list[str], neg: list[str]) -> dict:
    shutil.rmtree(probe_sweep.store_dir(eng), ignore_errors=True)
    j = eng.start_job("probe_sweep", {"positive": pos, "negative": neg, "seed": SEED})
    while not j.status.finished:
        time.sleep(0.005)
    assert j.status == "done", j.error
    return j.result


def bench(eng: Engine, name: str, reps: int) -> dict:
    lm = eng.require_model()
    pos, neg = prompts()
    texts, y = pos + neg, np.array([1] * N + [0] * N)
    hooks = probe_sweep.default_hooks(lm.model.cfg.n_layers)
    sae_at = probe_sweep._saes_at(lm, hooks)
    eng.compute(
        direct, lm, texts[:20] + texts[-20:], np.array([1] * 20 + [0] * 20), hooks, {}
    )  # warm
    t_direct, t_fwd, t_job = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        _, t1 = eng.compute(direct, lm, texts, y, hooks, sae_at)
        t_direct.append(time.perf_counter() - t0)
        t_fwd.append(t1 - t0)
        t0 = time.perf_counter()
        res = job(eng, pos, neg)
        t_job.append(time.perf_counter() - t0)
    d, f, jb = (statistics.median(v) for v in (t_direct, t_fwd, t_job))
    best = max(res["results"], key=lambda r: r["logistic_probe"]["auroc"])
    row = {"model": name, "prompts": 2 * N, "hooks": len(hooks), "saes": len(sae_at),
           "direct_s": round(d, 2), "direct_forward_s": round(f, 2), "direct_fits_s": round(d - f, 2),
           "job_s": round(jb, 2), "ratio": round(jb / d, 3), "reps": reps,
           "ratios": [round(a / b, 3) for a, b in zip(t_job, t_direct, strict=True)],
           "best_probe": [best["hook"], best["logistic_probe"]["accuracy"]]}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def gpt2_shape() -> LoadedModel:
    torch.manual_seed(0)
    model = HookedTransformer(HookedTransformerConfig(n_ctx=1024, device="cpu", seed=0, **GPT2))
    model.eval()
    model.tokenizer = AutoTokenizer.from_pretrained(str(ORGANISM))
    return LoadedModel(model, "gpt2-shape", "local", "bench-gpt2-shape", "cpu", "float32", 0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gpt2", action="store_true")
    args = ap.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(EngineSettings(model=str(ORGANISM), cache_dir=tmp))
        assert len(saes.for_model(eng.require_model())) > 0
        bench(eng, "organism", args.reps)
        if args.gpt2:
            eng.use(gpt2_shape())
            bench(eng, "gpt2-small shape (random)", max(1, args.reps - 1))
        eng.close()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
