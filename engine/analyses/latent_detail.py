"""One latent in full: its activation on the prompt, top-activating examples, activation
histogram, logit effect (top and bottom tokens of ``W_dec[i] @ W_U``) and its label.

Works for SAE latents (``source="sae"``, ``sae=<id>``) and transcoder latents
(``source="transcoder"``, ``layer=<L>``): a transcoder reads ``blocks.L.ln2.hook_normalized``
and writes to ``blocks.L.hook_mlp_out``. The Neuronpedia label is not here (it needs the
network): ``GET /saes/latent/neuronpedia?sae=&index=`` fetches it.
"""

from __future__ import annotations

import torch

from engine import saes
from engine.analyses.base import Analysis
from engine.analyses.sae_latents import latent_acts
from engine.latent_book import HIST_EDGES, N_BINS, hist_bins
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.analyses import TokenOut
from engine.schemas.saes import Example, Histogram, LatentDetailParams, LatentDetailResult


def histogram(values: list[float], over: str) -> Histogram:
    """Counts of the positive `values` in the latent books' bins (engine/latent_book.py)."""
    v = torch.tensor(values, dtype=torch.float32)
    bins = hist_bins(v[v > 0])
    counts = torch.bincount(bins, minlength=N_BINS).tolist()
    return Histogram(edges=HIST_EDGES, counts=counts, over=over)


def _examples(rec: dict, vocab: list[str]) -> list[Example]:
    return [
        Example(tokens=[vocab[t] for t in ex["tokens"]], acts=ex["acts"], max_pos=ex["max_pos"])
        for ex in rec.get("examples", [])
    ]


def _book_part(d: saes.Dictionary, index: int, examples: str | None) -> dict:
    book = d.examples(examples)
    rec = book.record(index) if book else None
    if rec is None:
        return {"label": None, "label_origin": "none", "max_act": None, "frequency": None,
                "examples": [], "examples_over": "no examples for this dictionary",
                "histogram": None}  # fmt: skip
    vocab = book.doc["vocab"]
    if "hist" in rec:
        hist = Histogram(edges=HIST_EDGES, counts=rec["hist"], over=f"every token of {book.over}")
    else:
        values = [a for ex in rec.get("examples", []) for a in ex["acts"]]
        hist = histogram(values, f"the top-example windows ({book.over})")
    return {
        "label": rec.get("label"),
        "label_origin": "shipped" if examples is None else "computed",
        "max_act": rec.get("max_act"),
        "frequency": rec.get("frequency"),
        "examples": _examples(rec, vocab),
        "examples_over": book.over,
        "histogram": hist,
    }


def logit_effect(run: PromptRun, d: saes.Dictionary, index: int, n: int) -> dict:
    model = run.lm.model
    with torch.inference_mode():
        w = d.W_dec[index].to(model.W_U.dtype)
        effect = (w @ model.W_U).float()
    top = effect.topk(n)
    bottom = (-effect).topk(n)
    tok = model.tokenizer

    def out(ids: list[int]) -> list[TokenOut]:
        return [TokenOut(id=i, text=tok.decode([i])) for i in ids]

    return {
        "top_logits": out(top.indices.tolist()),
        "top_values": top.values.tolist(),
        "bottom_logits": out(bottom.indices.tolist()),
        "bottom_values": (-bottom.values).tolist(),
        "decoder_norm": float(w.float().norm()),
    }


def latent_detail(run: PromptRun, params: LatentDetailParams) -> LatentDetailResult:
    d = saes.resolve(run.lm, params.source, params.sae, params.layer)
    acts = latent_acts(run, d)[:, params.index].tolist()
    return LatentDetailResult(
        source=params.source,
        key=d.key,
        index=params.index,
        reads=d.reads,
        writes=d.writes,
        d_latent=d.d_latent,
        tokens=run.token_infos,
        acts=acts,
        neuronpedia=d.neuronpedia(params.index),
        **_book_part(d, params.index, params.examples),
        **logit_effect(run, d, params.index, params.n_logits),
    )


def check(lm: LoadedModel, params: LatentDetailParams) -> None:
    d = saes.resolve(lm, params.source, params.sae, params.layer)
    saes.check_index(d, params.index)
    d.examples(params.examples)


LATENT_DETAIL = Analysis(
    name="latent_detail",
    version=1,
    params=LatentDetailParams,
    result=LatentDetailResult,
    fn=latent_detail,
    feature="saes",
    available=saes.availability,
    check=check,
    description="one SAE or transcoder latent: activations, examples, histogram, logit "
    "effect, label",
)
