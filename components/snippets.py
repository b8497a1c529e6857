"""The bundle of each view's figures: its data as arrays, and the TransformerLens code that
recomputes them (pure functions of the engine's results; see ``components.bundles``).

Every body runs after the snippet header has made ``model``, ``tokens`` ([1, pos]),
``logits`` ([1, pos, vocab]) and ``cache`` (with its batch dimension), and ends with a dict
``data`` whose keys are the bundle's arrays. A body that recomputes an analysis starts with
the engine's own function for it (its source, read by ``components.engine_source``) and
calls it: the snippet is the engine's code, not a copy.
"""

from __future__ import annotations

import textwrap

from components.bundles import Array, BundleSpec
from components.engine_source import engine_source
from engine.schemas.analyses import (
    DLAResult,
    HeadScoresResult,
    LensTargetsResult,
    LogitLensResult,
    PredictionsResult,
)
from engine.schemas.common import TokenInfo
from engine.schemas.saes import SaeLatentsResult

# The engine's own functions each snippet runs (read from their files: see engine_source)
PREDICTIONS = engine_source(("engine.analyses.predictions", ("next_token", "token_loss")))
HEAD_SCORES = engine_source(
    ("engine.analyses.head_scores", ("Patterns", "Mask", "repeat_masks", "score_rows"))
)
LENS = engine_source(
    ("engine.analyses.lens_topk", ("VOCAB_CHUNK", "TopK", "soft_cap", "lens_topk")),
    ("engine.analyses.logit_lens", ("lens_hooks", "lens_logits", "target_traces")),
)
DLA = engine_source(("engine.analyses.dla", ("READ", "at_position", "logit_attribution")))
SAE_TOP = engine_source(("engine.analyses.sae_latents", ("top_latents",)))


def _token_labels(tokens: list[TokenInfo]) -> list[str]:
    return [t.text for t in tokens]


def predictions(result: PredictionsResult, top_k: int) -> BundleSpec:
    """Prompt view: top-k next-token predictions at the positions the figure draws (the
    answer's window), and their loss; the snippet runs the engine's ``next_token`` and ``token_loss``
    (engine/analyses/predictions.py)."""
    top, start, stop = result.top, result.start, result.stop
    code = PREDICTIONS + textwrap.dedent(f"""
        TOP_K = {top_k}
        START, STOP = {start}, {stop}  # the positions drawn
        top_id, top_logprob = next_token(logits[0], TOP_K, START, STOP)
        loss = [None] + token_loss(logits[0], tokens[0].tolist()).tolist()  # given the ones before
        data = {{
            "top_id": top_id.tolist(),  # [pos, k]
            "top_prob": top_logprob.exp().tolist(),
            "loss": loss[START:STOP],
        }}
        """)
    return BundleSpec(
        data={
            "top_id": Array(("pos", "rank"), [[c.id for c in row] for row in top]),
            "top_prob": Array(("pos", "rank"), [[c.prob for c in row] for row in top]),
            "loss": Array(("pos",), list(result.loss[start:stop])),
        },
        code=code,
        labels={"pos": _token_labels(result.tokens[start:stop])},
    )


def head_scores(result: HeadScoresResult, name: str) -> BundleSpec | None:
    """Attention view: one head score of every head (None when undefined on this prompt);
    the snippet runs the engine's ``score_rows`` (engine/analyses/head_scores.py)."""
    score = next(s for s in result.scores if s.name == name)
    if score.values is None:
        return None
    code = HEAD_SCORES + textwrap.dedent(f"""
        # every head's pattern [layer, head, query, key]
        patterns = torch.stack([cache["pattern", layer][0] for layer in range(model.cfg.n_layers)])
        score = score_rows(patterns, tokens[0].tolist())[{name!r}].mean(-1)  # over its rows
        data = {{{name!r}: score.tolist()}}  # [layer, head]
        """)
    return BundleSpec(data={name: Array(("layer", "head"), score.values)}, code=code)


def patterns(
    heads: list[tuple[int, int]], values: list, tokens: list[str], start: int = 0
) -> BundleSpec:
    """Attention view: the pattern [query, key] of each shown head over the position window
    (`tokens` are the window's, from `start`), in float16 as the engine sends it."""
    stop = start + len(tokens)
    code = f"""
        HEADS = {[tuple(h) for h in heads]!r}  # (layer, head)
        START, STOP = {start}, {stop}  # the position window: queries and keys
        pattern = torch.stack(
            [cache["pattern", layer][0, head, START:STOP, START:STOP] for layer, head in HEADS]
        )
        data = {{"pattern": pattern.half().float().tolist()}}  # [head, query, key], float16
        """
    labels = [f"{i}:{t}" for i, t in enumerate(tokens, start)]
    return BundleSpec(
        data={"pattern": Array(("head", "query", "key"), [_lists(v) for v in values])},
        code=code,
        labels={"head": [f"L{la}H{h}" for la, h in heads], "query": labels, "key": labels},
    )


def _lists(values) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def logit_lens(grid: LogitLensResult) -> BundleSpec:
    """Logit lens view: the top token (and its probability) of every (row, pos) in the
    position window; the snippet runs the engine's ``lens_topk`` (engine/analyses/lens_topk.py:
    chunked over the vocabulary, the model's soft cap applied) on the rows ``lens_hooks``
    names (engine/analyses/logit_lens.py)."""
    top = grid.top
    code = LENS + textwrap.dedent(f"""
        STAGE, (START, STOP) = {grid.stage.value!r}, ({grid.start}, {grid.stop})
        hooks = lens_hooks(model.cfg.n_layers, STAGE)
        resid = torch.stack([cache[hook][0, START:STOP] for hook in hooks])  # [row, pos, d]
        top_id, top_prob, _ = lens_topk(model, resid.reshape(-1, resid.shape[-1]), 1)
        shape = resid.shape[:2]  # the lens's best token at every (row, pos)
        data = {{"top_id": top_id.reshape(shape).tolist(), "top_prob": top_prob.reshape(shape).tolist()}}
        """)
    return BundleSpec(
        data={
            "top_id": Array(("row", "pos"), [[cell[0].id for cell in r] for r in top]),
            "top_prob": Array(("row", "pos"), [[cell[0].prob for cell in r] for r in top]),
        },
        code=code,
        labels={"row": list(grid.rows), "pos": _token_labels(grid.tokens)},
    )


def lens_targets(traces: LensTargetsResult) -> BundleSpec:
    """Logit lens view: chosen tokens' lens probability and rank down the rows at one pos;
    the snippet runs the engine's ``lens_logits`` and ``target_traces``."""
    ids = [t.token.id for t in traces.traces]
    code = LENS + textwrap.dedent(f"""
        STAGE, POS, TARGETS = {traces.stage.value!r}, {traces.pos}, {ids!r}
        hooks = lens_hooks(model.cfg.n_layers, STAGE)
        lens = lens_logits(model, torch.stack([cache[hook][0, POS] for hook in hooks]))
        prob, rank = target_traces(lens, TARGETS)  # [row, target]
        data = {{"prob": prob.T.tolist(), "rank": rank.T.tolist()}}
        """)
    return BundleSpec(
        data={
            "prob": Array(("target", "row"), [t.prob for t in traces.traces]),
            "rank": Array(("target", "row"), [t.rank for t in traces.traces]),
        },
        code=code,
        labels={"target": [t.token.text for t in traces.traces], "row": list(traces.rows)},
    )


def _dla_code(res: DLAResult) -> str:
    """The engine's ``logit_attribution`` (engine/analyses/dla.py: TransformerLens's own
    decomposition at one position) on the bundle's target (minus baseline)."""
    base, target = res.baseline, res.target.id
    minus = f" - W_U[:, {base.id}]" if base else ""
    bias = f"b_U[{target}]" + (f" - b_U[{base.id}]" if base else "")
    return DLA + textwrap.dedent(f"""
        POS = {res.pos}
        W_U, b_U = model.W_U.float(), model.b_U.float()
        direction = W_U[:, {target}]{minus}  # {res.metric}
        bias = float({bias})
        part = logit_attribution(model, cache.remove_batch_dim(), POS, direction)
        heads = part["heads"]  # [layer, head]
        terms = [float(part["embed"]), float(part["pos_embed"]), *part["mlps"].tolist()]
        terms += [float(heads.sum()), float(part["attn_bias"].sum()), bias]
        terms.append(sum(terms))  # the total: what the model outputs (before a soft cap)
        data = {{"heads": heads.tolist(), "terms": terms}}
        """)


def dla_heads(res: DLAResult) -> BundleSpec:
    """DLA view: each head's direct effect on the target logit (or logit difference)."""
    return BundleSpec(data={"heads": Array(("layer", "head"), res.heads)}, code=_dla_code(res))


def dla_terms(res: DLAResult, terms: list[tuple[str, float]]) -> BundleSpec:
    """DLA view: embeddings, each MLP, all heads, biases and the total (`terms` as drawn)."""
    return BundleSpec(
        data={"terms": Array(("term",), [v for _, v in terms])},
        code=_dla_code(res),
        labels={"term": [n for n, _ in terms]},
    )


def sae_token_latents(res: SaeLatentsResult, order: list[int]) -> BundleSpec:
    """SAE latents view: activation of each shown latent at each token, where it is among the
    token's top-k (blank elsewhere and at special tokens such as BOS), as the figure draws it;
    the snippet runs the engine's ``top_latents`` (engine/analyses/sae_latents.py)."""
    info, top_k = res.sae, max((len(row) for row in res.top), default=0)
    special = [t.pos for t in res.tokens if t.start is None]
    where = {i: k for k, i in enumerate(order)}
    acts: list[list[float | None]] = [[None] * len(res.tokens) for _ in order]
    for pos, row in enumerate(res.top):
        for r in row:
            if r.index in where and pos not in special:
                acts[where[r.index]][pos] = r.act
    if info.release:
        load = f"sae = SAE.from_pretrained({info.release!r}, {info.sae_id!r})"
    else:
        load = f"sae = SAE.load_from_disk({relative_path(info.path or '')!r})"
    code = SAE_TOP + textwrap.dedent(f"""
        from sae_lens import SAE

        {load}
        TOP_K, LATENTS, SPECIAL = {top_k}, {order!r}, {special!r}
        acts = sae.encode(cache[sae.cfg.metadata.hook_name][0])  # [pos, d_sae]
        _, top_index, fires = top_latents(acts, TOP_K)  # each token's top-k, where they fire
        shown = torch.zeros_like(acts, dtype=torch.bool).scatter_(-1, top_index, fires)
        shown[SPECIAL] = False  # BOS: the SAE was not trained on it
        z = torch.where(shown, acts, torch.nan)[:, LATENTS].T  # [latent, pos]
        data = {{"acts": [[None if v != v else v for v in row] for row in z.tolist()]}}
        """)
    return BundleSpec(
        data={"acts": Array(("latent", "pos"), acts)},
        code=code,
        labels={"latent": [f"#{i}" for i in order], "pos": _token_labels(res.tokens)},
        packages=("transformer_lens", "sae_lens"),
    )


def relative_path(path: str) -> str:
    """`path` relative to the working directory when it is inside it."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path
