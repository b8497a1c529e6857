"""The bundle of each view's figures: its data as arrays, and the TransformerLens code that
recomputes them (pure functions of the engine's results; see ``components.bundles``).

Every body runs after the snippet header has made ``model``, ``tokens`` ([1, pos]),
``logits`` ([1, pos, vocab]) and ``cache`` (with its batch dimension), and ends with a dict
``data`` whose keys are the bundle's arrays.
"""

from __future__ import annotations

from components.bundles import Array, BundleSpec


def _token_labels(tokens: list[dict]) -> list[str]:
    return [t["text"] for t in tokens]


def predictions(result: dict, top_k: int) -> BundleSpec:
    """Prompt view: top-k next-token predictions at every position, and per-token loss."""
    top = result["top"]
    code = f"""
        TOP_K = {top_k}
        logprobs = logits[0].log_softmax(-1)  # [pos, vocab]
        top_prob, top_id = logprobs.exp().topk(TOP_K, dim=-1)  # [pos, k]
        # loss of each token given the ones before it (none for the first)
        loss = -logprobs[:-1].gather(-1, tokens[0, 1:, None])[:, 0]
        data = {{
            "top_id": top_id.tolist(),
            "top_prob": top_prob.tolist(),
            "loss": [None] + loss.tolist(),
        }}
        """
    return BundleSpec(
        data={
            "top_id": Array(("pos", "rank"), [[c["id"] for c in row] for row in top]),
            "top_prob": Array(("pos", "rank"), [[c["prob"] for c in row] for row in top]),
            "loss": Array(("pos",), list(result["loss"])),
        },
        code=code,
        labels={"pos": _token_labels(result["tokens"])},
    )


SCORE_CODE = {
    "prev_token": "score = patterns[..., q, q - 1].mean(-1)  # attention to the token before",
    "bos": "score = patterns[..., 1:, 0].mean(-1)  # attention to position 0",
    "entropy": "rows = patterns[..., 1:, :]\nscore = -torch.xlogy(rows, rows).sum(-1).mean(-1)",
    "duplicate": """\
        ids = tokens[0]
        mask = (ids[:, None] == ids[None, :]).tril(-1)  # [q, k]: k < q holds q's token
        rows = mask.any(-1)
        rows[0] = False
        score = (patterns * mask).sum(-1)[..., rows].mean(-1)""",
    "induction": """\
        ids = tokens[0]
        earlier = (ids[:, None] == ids[None, :]).tril(-1)  # [q, k]: k < q holds q's token
        mask = torch.zeros_like(earlier)
        mask[:, 1:] = earlier[:, :-1]  # the token right after an earlier copy
        rows = mask.any(-1)
        rows[0] = False
        score = (patterns * mask).sum(-1)[..., rows].mean(-1)""",
}


def head_scores(result: dict, name: str) -> BundleSpec | None:
    """Attention view: one head score of every head (None when undefined on this prompt)."""
    score = next(s for s in result["scores"] if s["name"] == name)
    if score["values"] is None or name not in SCORE_CODE:
        return None
    body = "\n".join(line.strip() for line in SCORE_CODE[name].splitlines())
    code = f"""
        # every head's pattern [layer, head, query, key]; rows from query 1 (row 0 is trivial)
        patterns = torch.stack([cache["pattern", layer][0] for layer in range(model.cfg.n_layers)])
        q = torch.arange(1, tokens.shape[1])
{_indent(body, 8)}
        data = {{"{name}": score.tolist()}}  # [layer, head]
        """
    return BundleSpec(data={name: Array(("layer", "head"), score["values"])}, code=code)


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


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


def _lens_rows(stage: str) -> str:
    extra = (
        ""
        if stage == "resid_post"
        else '\n        hooks.append(f"blocks.{n - 1}.hook_resid_post")  # the output row'
    )
    return f"""
        STAGE = {stage!r}
        n = model.cfg.n_layers
        hooks = [f"blocks.{{layer}}.hook_{{STAGE}}" for layer in range(n)]{extra}"""


def logit_lens(grid: dict) -> BundleSpec:
    """Logit lens view: the top token (and its probability) of every (row, pos) in the
    position window."""
    top = grid["top"]
    code = (
        _lens_rows(grid["stage"])
        + f"""
        START, STOP = {grid["start"]}, {grid["stop"]}  # the position window"""
        + """
        resid = torch.stack([cache[hook][0, START:STOP] for hook in hooks])  # [row, pos, d]
        probs = model.unembed(model.ln_final(resid)).softmax(-1)  # the lens at every cell
        top_prob, top_id = probs.max(-1)  # [row, pos]
        data = {"top_id": top_id.tolist(), "top_prob": top_prob.tolist()}
        """
    )
    return BundleSpec(
        data={
            "top_id": Array(("row", "pos"), [[cell[0]["id"] for cell in r] for r in top]),
            "top_prob": Array(("row", "pos"), [[cell[0]["prob"] for cell in r] for r in top]),
        },
        code=code,
        labels={"row": list(grid["rows"]), "pos": _token_labels(grid["tokens"])},
    )


def lens_targets(traces: dict) -> BundleSpec:
    """Logit lens view: chosen tokens' lens probability and rank down the rows at one pos."""
    ids = [t["token"]["id"] for t in traces["traces"]]
    code = (
        _lens_rows(traces["stage"])
        + f"""
        POS, TARGETS = {traces["pos"]}, {ids!r}
        resid = torch.stack([cache[hook][0, POS] for hook in hooks])  # [row, d_model]
        lens = model.unembed(model.ln_final(resid))  # [row, vocab]
        prob = lens.softmax(-1)[:, TARGETS].T  # [target, row]
        rank = (lens[:, None, :] > lens[:, TARGETS, None]).sum(-1).T + 1  # 1 = top
        data = {{"prob": prob.tolist(), "rank": rank.tolist()}}
        """
    )
    return BundleSpec(
        data={
            "prob": Array(("target", "row"), [t["prob"] for t in traces["traces"]]),
            "rank": Array(("target", "row"), [t["rank"] for t in traces["traces"]]),
        },
        code=code,
        labels={
            "target": [t["token"]["text"] for t in traces["traces"]],
            "row": list(traces["rows"]),
        },
    )


def _dla_code(res: dict) -> str:
    base, target = res["baseline"], res["target"]["id"]
    minus = f" - model.W_U[:, {base['id']}]" if base else ""
    bias = f"model.b_U[{target}]" + (f" - model.b_U[{base['id']}]" if base else "")
    return f"""
        POS = {res["pos"]}
        direction = model.W_U[:, {target}]{minus}  # {res["metric"]}
        bias = float({bias})


        def to_logit(stack):  # through ln_final with its scale at POS held fixed
            return (cache.apply_ln_to_stack(stack, layer=-1, pos_slice=POS) @ direction)[:, 0]


        per_head = cache.stack_head_results(layer=-1, pos_slice=POS)  # [layer*head, 1, d]
        heads = to_logit(per_head).reshape(model.cfg.n_layers, model.cfg.n_heads)
        parts, names = cache.decompose_resid(layer=-1, pos_slice=POS, return_labels=True)
        part = dict(zip(names, to_logit(parts).tolist()))  # embed, pos_embed, L_attn_out, L_mlp_out
        attn = sum(part[f"{{layer}}_attn_out"] for layer in range(model.cfg.n_layers))
        terms = [part["embed"], part["pos_embed"]]
        terms += [part[f"{{layer}}_mlp_out"] for layer in range(model.cfg.n_layers)]
        terms += [float(heads.sum()), attn - float(heads.sum()), bias]
        terms.append(sum(terms))  # the total: what the model outputs
        data = {{"heads": heads.tolist(), "terms": terms}}
        """


def dla_heads(res: dict) -> BundleSpec:
    """DLA view: each head's direct effect on the target logit (or logit difference)."""
    return BundleSpec(data={"heads": Array(("layer", "head"), res["heads"])}, code=_dla_code(res))


def dla_terms(res: dict, terms: list[tuple[str, float]]) -> BundleSpec:
    """DLA view: embeddings, each MLP, all heads, biases and the total (`terms` as drawn)."""
    return BundleSpec(
        data={"terms": Array(("term",), [v for _, v in terms])},
        code=_dla_code(res),
        labels={"term": [n for n, _ in terms]},
    )


def sae_token_latents(res: dict, order: list[int]) -> BundleSpec:
    """SAE latents view: activation of each shown latent at each token, where it is among the
    token's top-k (blank elsewhere and at special tokens such as BOS), as the figure draws it."""
    info, top_k = res["sae"], max((len(row) for row in res["top"]), default=0)
    special = [t["pos"] for t in res["tokens"] if t["start"] is None]
    where = {i: k for k, i in enumerate(order)}
    acts: list[list[float | None]] = [[None] * len(res["tokens"]) for _ in order]
    for pos, row in enumerate(res["top"]):
        for r in row:
            if r["index"] in where and pos not in special:
                acts[where[r["index"]]][pos] = r["act"]
    if info.get("release"):
        load = f"sae = SAE.from_pretrained({info['release']!r}, {info['sae_id']!r})"
    else:
        load = f"sae = SAE.load_from_disk({relative_path(info.get('path') or '')!r})"
    code = f"""
        from sae_lens import SAE

        {load}
        TOP_K, LATENTS, SPECIAL = {top_k}, {order!r}, {special!r}
        acts = sae.encode(cache[sae.cfg.metadata.hook_name][0])  # [pos, d_sae]
        shown = torch.zeros_like(acts, dtype=torch.bool)
        shown.scatter_(-1, acts.topk(TOP_K, dim=-1).indices, True)  # each token's top-k
        shown &= acts > 0
        shown[SPECIAL] = False  # BOS: the SAE was not trained on it
        z = torch.where(shown, acts, torch.nan)[:, LATENTS].T  # [latent, pos]
        data = {{"acts": [[None if v != v else v for v in row] for row in z.tolist()]}}
        """
    return BundleSpec(
        data={"acts": Array(("latent", "pos"), acts)},
        code=code,
        labels={"latent": [f"#{i}" for i in order], "pos": _token_labels(res["tokens"])},
        packages=("transformer_lens", "sae_lens"),
    )


def relative_path(path: str) -> str:
    """`path` relative to the working directory when it is inside it."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path
