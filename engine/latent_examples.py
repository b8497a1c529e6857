"""Top-activating examples of every latent of an SAE over texts the user names (a job): a text
file or a dataset (engine/text_sources.py).

One forward pass per text (BOS first, cut to the context); for each latent the ``top_k``
texts where it fires most are kept (one example per text, at its maximum) with a window of
activations around the maximum, plus a log-spaced histogram of all its nonzero activations
and its firing frequency. The result is written in the shipped format
(``interpscope-latent-examples/1``, gzip JSON) under the cache directory, keyed by the model,
the SAE and the texts, and attached to the SAE as a named example set.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from engine import saes, text_sources
from engine.analyses.latent_detail import HIST_EDGES
from engine.atomic import atomic_write
from engine.jobs import JobCancelled, JobContext
from engine.schemas.saes import ExamplesJobParams

if TYPE_CHECKING:
    from engine.service import Engine

FORMAT = "interpscope-latent-examples/1"
BEFORE, AFTER = 10, 3
N_BINS = len(HIST_EDGES) - 1


class Collector:
    """Running top-k examples, histogram and firing counts per latent."""

    def __init__(self, k: int, d: int, device: str):
        w = BEFORE + 1 + AFTER
        self.k, self.d, self.w = k, d, w
        self.values = torch.zeros(k, d, device=device)
        self.rows = torch.full((k, d), -1, dtype=torch.long, device=device)
        self.maxpos = torch.zeros(k, d, dtype=torch.long, device=device)
        self.win_acts = torch.zeros(k, d, w, device=device)
        self.win_tok = torch.full((k, d, w), -1, dtype=torch.long, device=device)
        self.hist = torch.zeros(d * N_BINS, dtype=torch.long, device=device)
        self.active = torch.zeros(d, dtype=torch.long, device=device)
        self.n_tokens = 0

    def add(self, acts: Tensor, tokens: Tensor, row: int) -> None:
        """`acts` [pos, d] (zeroed where not counted), `tokens` [pos]."""
        seq = acts.shape[0]
        self.n_tokens += seq - 1
        nz = acts > 0
        self.active += nz.sum(0)
        lat = nz.nonzero()[:, 1]
        vals = acts[nz]
        bins = (4 * vals.log10()).floor().long().add(12).clamp(0, N_BINS - 1)
        self.hist.scatter_add_(0, lat * N_BINS + bins, torch.ones_like(bins))
        pad = max(self.w - seq, 0)
        acts_p = torch.nn.functional.pad(acts, (0, 0, 0, pad))
        tok_p = torch.nn.functional.pad(tokens, (0, pad), value=-1)
        best, pos = acts.max(0)
        start = (pos - BEFORE).clamp(min=0).clamp(max=max(seq - self.w, 0))
        cols = start[:, None] + torch.arange(self.w, device=acts.device)  # [d, w]
        wa = acts_p[cols, torch.arange(self.d, device=acts.device)[:, None]]
        wt = tok_p[cols]
        values = torch.cat([self.values, best[None]])
        top = values.topk(self.k, dim=0).indices  # [k, d]

        def cat(old: Tensor, new: Tensor) -> Tensor:  # keep the top-k entries of old + new
            idx = top.view(self.k, self.d, *([1] * (old.dim() - 2)))
            return torch.cat([old, new[None]]).gather(0, idx.expand(-1, -1, *old.shape[2:]))

        self.values = values.gather(0, top)
        self.rows = cat(self.rows, torch.full_like(best, row, dtype=torch.long))
        self.maxpos = cat(self.maxpos, pos - start)
        self.win_acts = cat(self.win_acts, wa)
        self.win_tok = cat(self.win_tok, wt)


def auto_label(examples: list[dict], vocab: list[str]) -> str:
    """The token most examples peak on, else the commonest peak tokens."""
    if not examples:
        return "dead"
    peaks = Counter(vocab[ex["tokens"][ex["max_pos"]]] for ex in examples).most_common(3)
    if peaks[0][1] / len(examples) >= 0.5:
        return repr(peaks[0][0])
    return ", ".join(repr(t) for t, _ in peaks) + "…"


def records(c: Collector, vocab: list[str], tick=lambda: None) -> list[dict]:
    vals, rows, mp = c.values.cpu(), c.rows.cpu(), c.maxpos.cpu()
    wa, wt = c.win_acts.cpu(), c.win_tok.cpu()
    hist, active = c.hist.view(c.d, N_BINS).cpu().tolist(), c.active.cpu().tolist()
    out = []
    for i in range(c.d):
        if i % 1024 == 0:
            tick()
        exs = []
        for e in range(c.k):
            if vals[e, i] <= 0:
                break
            keep = wt[e, i] >= 0
            exs.append({"tokens": wt[e, i][keep].tolist(),
                        "acts": [round(a, 3) for a in wa[e, i][keep].tolist()],
                        "max_pos": int(mp[e, i]), "row": int(rows[e, i])})  # fmt: skip
        out.append({"index": i, "label": auto_label(exs, vocab),
                    "frequency": active[i] / max(c.n_tokens, 1),
                    "max_act": round(float(vals[0, i]), 3), "hist": hist[i], "examples": exs})  # fmt: skip
    return out


def _token_ids(lm, text: str) -> list[int]:
    tok = lm.model.tokenizer
    ids = tok(text[:20_000], add_special_tokens=False)["input_ids"]
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    return (bos + ids)[: lm.n_ctx]


def _store(engine: Engine, d: saes.Dictionary, name: str) -> Path:
    lm = engine.require_model()
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{lm.fingerprint}-{d.key}")
    return Path(engine.settings.cache_dir) / "latent_examples" / f"{safe}-{name}.json.gz"


@torch.inference_mode()
def _collect(lm, d: saes.Dictionary, c: Collector, tokens: Tensor, row: int) -> None:
    _, cache = lm.model.run_with_cache(tokens[None], names_filter=lambda n: n == d.reads)
    acts = d.encode(cache[d.reads][0]).float()
    acts[tokens == lm.model.tokenizer.bos_token_id] = 0  # BOS is an outlier
    c.add(acts, tokens, row)


def check(engine: Engine, p: ExamplesJobParams) -> ExamplesJobParams:
    """At submit: the SAE is attached and the source is readable (engine/text_sources.py)."""
    saes.for_model(engine.require_model()).get(p.sae)
    return text_sources.check(p, engine.settings)


def run(engine: Engine, ctx: JobContext, p: ExamplesJobParams) -> dict:
    lm = engine.require_model()
    d = saes.for_model(lm).get(p.sae)

    def tick() -> None:  # between rows and latents, where no progress is reported
        if ctx.cancelled:
            raise JobCancelled()

    texts, name, where = text_sources.read(p, engine.settings, tick)
    name = f"{name}-k{p.top_k}"
    path = _store(engine, d, name)
    over = f"{len(texts)} texts of {where}"
    if path.is_file():
        d.computed[name] = saes.LatentBook.read(path, over)
        return {"examples": name, "cached": True, "n_texts": len(texts)}
    c = Collector(p.top_k, d.d_latent, lm.device)
    for i, text in enumerate(texts):
        ctx.progress(i / len(texts), f"text {i + 1} of {len(texts)}")
        tokens = torch.tensor(_token_ids(lm, text), device=lm.device)
        engine.compute(_collect, lm, d, c, tokens, i)
    ctx.progress(0.99, "writing")
    tok = lm.model.tokenizer
    vocab = []
    for i in range(lm.model.cfg.d_vocab):
        if i % 4096 == 0:
            tick()
        vocab.append(tok.decode([i]))
    doc = {"format": FORMAT, "source": d.key, "hook_name": d.reads, "n_rows": len(texts),
           "n_tokens": c.n_tokens, "top_k": p.top_k, "hist_edges": HIST_EDGES, "vocab": vocab,
           "latents": records(c, vocab, tick)}  # fmt: skip
    data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6)
    atomic_write(path, data)
    d.computed[name] = saes.LatentBook(doc, over)
    return {"examples": name, "cached": False, "n_texts": len(texts), "n_tokens": c.n_tokens}
