"""Top-activating examples of every latent of an SAE over texts the user names (a job): a text
file or a dataset (engine/text_sources.py).

One forward pass per text (BOS first, cut to the context); for each latent the ``top_k``
texts where it fires most are kept (one example per text, at its maximum) with a window of
activations around the maximum, plus a log-spaced histogram of all its nonzero activations
and its firing frequency: the collector, labeller and file format the organism's shipped
examples use too (engine/latent_book.py). The file is written under the cache directory,
keyed by the model, the SAE and the texts, and attached to the SAE as a named example set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from engine import saes, text_sources
from engine.jobs import JobCancelled, JobContext
from engine.latent_book import HIST_EDGES, LatentBook, TopExamples, write_doc
from engine.schemas.saes import ExamplesJobParams

if TYPE_CHECKING:
    from engine.service import Engine


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
def _collect(lm, d: saes.Dictionary, c: TopExamples, tokens: Tensor, row: int) -> None:
    _, cache = lm.model.run_with_cache(tokens[None], names_filter=lambda n: n == d.reads)
    acts = d.encode(cache[d.reads][0]).float()
    acts[tokens == lm.model.tokenizer.bos_token_id] = 0  # BOS is an outlier
    c.add(acts[None], tokens[None], row)


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
        d.computed[name] = LatentBook.read(path, over)
        return {"examples": name, "cached": True, "n_texts": len(texts)}
    c = TopExamples(p.top_k, d.d_latent, device=lm.device)
    n_tokens = 0  # every token but the first (BOS) counts
    for i, text in enumerate(texts):
        ctx.progress(i / len(texts), f"text {i + 1} of {len(texts)}")
        tokens = torch.tensor(_token_ids(lm, text), device=lm.device)
        engine.compute(_collect, lm, d, c, tokens, i)
        n_tokens += len(tokens) - 1
    ctx.progress(0.99, "writing")
    tok = lm.model.tokenizer
    vocab = []
    for i in range(lm.model.cfg.d_vocab):
        if i % 4096 == 0:
            tick()
        vocab.append(tok.decode([i]))
    doc = {"source": d.key, "hook_name": d.reads, "n_rows": len(texts), "n_tokens": n_tokens,
           "top_k": p.top_k, "hist_edges": HIST_EDGES, "vocab": vocab,
           "latents": c.records(vocab, n_tokens, tick=tick)}  # fmt: skip
    d.computed[name] = LatentBook(write_doc(path, doc), over)
    return {"examples": name, "cached": False, "n_texts": len(texts), "n_tokens": n_tokens}
