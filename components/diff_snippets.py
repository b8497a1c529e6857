"""The bundles of the diff figures (issue 14): their data as arrays, and a snippet that runs
side B too (model B loaded as the engine loads it, or prompt B on the same model) and
recomputes the data with the engine's own functions (their source, read by
``components.engine_source``; see ``components.snippets``).

Every body runs after the snippet header (``model``, ``tokens``, ``logits``, ``cache`` of side
A) and ``side_b`` (``model_b``, ``tokens_b``, ``logits_b``, ``cache_b``), and defines ``data``.
"""

from __future__ import annotations

import textwrap
from functools import cache
from pathlib import Path

from components.bundles import Array, BundleSpec, ModelRef, load_code, local_loading
from components.compare import Comparison
from components.engine_source import engine_source
from components.snippets import DLA, PREDICTIONS, relative_path
from engine.schemas.analyses import AttentionResult, DLAResult
from engine.schemas.diff import DiffComponentsResult, DiffResidResult, DiffTokensResult
from engine.schemas.diff_latents import AdiffLensResult, DiffLatentsResult, LatentDiffSetResult
from engine.schemas.model import ModelInfo
from engine.schemas.saes import SaeInfo
from engine.schemas.steering import StreamEvent

# The engine's own functions the snippets run, read from their files when a bundle is made
# (components.engine_source; the tests run every snippet, so a renamed function fails there)
SOURCES = {
    "kl": (("engine.analyses.diff_tokens", ("CHUNK", "kl_and_top1")),),
    "resid": (("engine.analyses.diff_resid", ("resid_hooks", "resid_stack", "diff_lens")),),
    "sample": (("engine.steering", ("_sample", "_kl")),),
    "adiff": (
        (
            "engine.adiff",
            (
                "resid_hooks",
                "token_rows",
                "DiffSums",
                "mean_difference",
                "normalised",
                "unembed_read",
            ),
        ),
    ),  # fmt: skip
}


@cache
def source(name: str) -> str:
    return engine_source(*SOURCES[name])


def side_b(cmp: Comparison, info_b: ModelInfo | None, cwd: Path | None = None) -> str:
    """Snippet lines that run side B: model B loaded as the engine loads it (into ``model_b``)
    on the same tokens, or prompt B on the same model."""
    if cmp.model_b:
        ref = ModelRef.from_info(
            info_b or {"ref": cmp.model_b, "source": "local"}, cwd or Path.cwd()
        )
        imp = local_loading() if ref.local else ""  # (again: model A may be a hub model)
        return (
            "\n# Side B: model B on the same prompt\n" + imp
            + load_code(ref, var="model_b", const="MODEL_B")
            + "\nmodel_b.eval()\ntokens_b = tokens\nlogits_b, cache_b = model_b.run_with_cache(tokens_b)\n"
        )  # fmt: skip
    return textwrap.dedent(f"""
        # Side B: the same model on prompt B (compared position by position)
        PROMPT_B = {cmp.prompt_b!r}
        model_b = model
        tokens_b = model.to_tokens(PROMPT_B)
        logits_b, cache_b = model.run_with_cache(tokens_b)
        """)


def _spec(data: dict[str, Array], engine: str, b: str, body: str, **kw) -> BundleSpec:
    code = engine + b + textwrap.dedent(body)
    return BundleSpec(data=data, code=code, **kw)


def kl_tokens(result: DiffTokensResult, b: str) -> BundleSpec:
    """KL strip: KL(A || B) after each position of the window (``kl_and_top1``)."""
    start, stop = result.start, result.stop
    return _spec(
        {"kl": Array(("pos",), result.kl[start:stop])}, source("kl"), b,
        f"""
        START, STOP = {start}, {stop}  # the positions drawn
        kl, _, _ = kl_and_top1(logits[0], logits_b[0])  # [pos], nats
        data = {{"kl": kl[START:STOP].tolist()}}
        """,
        labels={"pos": [t.text for t in result.tokens[start:stop]]},
    )  # fmt: skip


def changed_predictions(result: DiffTokensResult, i: int, b: str) -> BundleSpec:
    """A's and B's top next tokens after one position (``next_token`` on each side)."""
    pos = result.start + i
    top_a, top_b = result.top_a[i], result.top_b[i]
    return _spec(
        {
            "top_a_id": Array(("rank",), [p.id for p in top_a]),
            "top_a_prob": Array(("rank",), [p.prob for p in top_a]),
            "top_b_id": Array(("rank",), [p.id for p in top_b]),
            "top_b_prob": Array(("rank",), [p.prob for p in top_b]),
        },
        PREDICTIONS, b,
        f"""
        POS, K = {pos}, {len(top_a)}
        ia, lpa = next_token(logits[0], K, POS, POS + 1)
        ib, lpb = next_token(logits_b[0], K, POS, POS + 1)
        data = {{"top_a_id": ia[0].tolist(), "top_a_prob": lpa[0].exp().tolist(),
                 "top_b_id": ib[0].tolist(), "top_b_prob": lpb[0].exp().tolist()}}
        """,
    )  # fmt: skip


def resid_norms(result: DiffResidResult, b: str) -> BundleSpec:
    """‖resid_B − resid_A‖ per residual stream read and position (``resid_stack``)."""
    return _spec(
        {"norm": Array(("row", "pos"), result.norm)}, source("resid"), b,
        f"""
        START, STOP = {result.start}, {result.stop}
        hooks = resid_hooks(model.cfg.n_layers)  # resid_pre of every block, the last resid_post
        ca, cb = cache.remove_batch_dim(), cache_b.remove_batch_dim()
        dev = model.cfg.device
        diff = resid_stack(cb, hooks, START, STOP, dev) - resid_stack(ca, hooks, START, STOP, dev)
        data = {{"norm": diff.norm(dim=-1).tolist()}}  # [row, pos]
        """,
        labels={"row": list(result.rows), "pos": [t.text for t in result.tokens]},
    )  # fmt: skip


def diff_lens(result: DiffResidResult, b: str) -> BundleSpec:
    """The difference lens at one position: the tokens W_U · (resid_B − resid_A) raises most
    (``diff_lens``: side A's unembedding, no ln_final, no b_U)."""
    up = result.lens_up
    return _spec(
        {"lens_id": Array(("row", "rank"), [[t.id for t in r] for r in up]),
         "lens_value": Array(("row", "rank"), [[t.value for t in r] for r in up])},
        source("resid"), b,
        f"""
        POS, K = {result.pos}, {len(up[0]) if up else 1}
        hooks = resid_hooks(model.cfg.n_layers)
        ca, cb = cache.remove_batch_dim(), cache_b.remove_batch_dim()
        dev = model.cfg.device
        at = (resid_stack(cb, hooks, POS, POS + 1, dev) - resid_stack(ca, hooks, POS, POS + 1, dev))[:, 0]
        up_id, up_value, _, _ = diff_lens(model, at, K)
        data = {{"lens_id": up_id.tolist(), "lens_value": up_value.tolist()}}
        """,
        labels={"row": list(result.rows)},
    )  # fmt: skip


def components(result: DiffComponentsResult, b: str) -> BundleSpec:
    """Each head's direct effect on the target (minus baseline) on A and on B, and the bars
    (``logit_attribution`` on each side, each through its own unembedding)."""
    a_res, b_res = result.a, result.b
    target, base = result.target.id, result.baseline
    minus = f" - m.W_U[:, {base.id}].float()" if base else ""
    bias = f"float(m.b_U[{target}])" + (f" - float(m.b_U[{base.id}])" if base else "")

    def terms(r: DLAResult) -> list[float]:
        heads = sum(map(sum, r.heads))
        return [r.embed, r.pos_embed, *r.mlps, heads, sum(r.attn_bias), r.unembed_bias,
                r.total]  # fmt: skip

    return _spec(
        {"heads_a": Array(("layer", "head"), a_res.heads),
         "heads_b": Array(("layer", "head"), b_res.heads),
         "terms_a": Array(("term",), terms(a_res)), "terms_b": Array(("term",), terms(b_res))},
        DLA, b,
        f"""
        POS = {result.pos}


        def side(m, c):
            direction = m.W_U[:, {target}].float(){minus}  # {result.metric}
            part = logit_attribution(m, c.remove_batch_dim(), POS, direction)
            heads = part["heads"]
            terms = [float(part["embed"]), float(part["pos_embed"]), *part["mlps"].tolist()]
            terms += [float(heads.sum()), float(part["attn_bias"].sum()), {bias}]
            return heads.tolist(), terms + [sum(terms)]


        (ha, ta), (hb, tb) = side(model, cache), side(model_b, cache_b)
        data = {{"heads_a": ha, "heads_b": hb, "terms_a": ta, "terms_b": tb}}
        """,
        labels={"term": ["embed", "pos embed", *(f"MLP {i}" for i in range(len(a_res.mlps))),
                         "all heads", "attn biases", "unembed bias", "total"]},
    )  # fmt: skip


def pattern_diff(
    layer: int, head: int, start: int, a: AttentionResult, b: AttentionResult, side: str
) -> BundleSpec:
    """One head's pattern over the window on A and on B (float16, as the engine sends it)."""
    from engine.schemas.arrays import unpack

    stop = start + len(a.tokens)
    return _spec(
        {"pattern_a": Array(("query", "key"), unpack(a.pattern).tolist()),
         "pattern_b": Array(("query", "key"), unpack(b.pattern).tolist())},
        "", side,
        f"""
        LAYER, HEAD, START, STOP = {layer}, {head}, {start}, {stop}
        pa = cache["pattern", LAYER][0, HEAD, START:STOP, START:STOP]
        pb = cache_b["pattern", LAYER][0, HEAD, START:STOP, START:STOP]
        data = {{"pattern_a": pa.half().float().tolist(), "pattern_b": pb.half().float().tolist()}}
        """,
    )  # fmt: skip


def generation(body: dict, events: list[StreamEvent], b: str) -> BundleSpec:
    """Side-by-side generation: both models' tokens and KL(A || B) along A's text, regenerated
    as ``engine/steering_models.py`` does (each continuation on its own generator seeded alike;
    model B reading A's text), without steering vectors."""
    steps = [e for e in events if e.type == "token"]
    return _spec(
        {"kl": Array(("step",), [e.kl for e in steps]),
         "a_id": Array(("step",), [e.base.id if e.base else None for e in steps]),
         "b_id": Array(("step",), [e.steered.id if e.steered else None for e in steps])},
        source("sample"), b,
        f"""
        N, TEMPERATURE, TOP_K, SEED = {len(steps)}, {body.get("temperature", 0.8)}, {body.get("top_k")}, {body.get("seed", 0)}
        EOS = {"model.tokenizer.eos_token_id" if body.get("stop_at_eos", True) else "None"}


        def run(m, ids, gen=None, follow=None):
            \"\"\"(token, next-token log-probs) of each step, (None, None) once stopped at EOS;
            with `follow`, read those tokens (another continuation's) instead of sampling.\"\"\"
            out, seq = [], ids
            for t in range(N):
                if t and (out[-1][1] is None or (follow[t - 1] is None if follow is not None
                                                 else out[-1][0] == EOS)):  # fmt: skip
                    out.append((None, None))
                    continue
                last = m(seq)[0, -1].float()
                token = None if follow is not None else int(_sample(last, gen, TEMPERATURE, TOP_K))
                out.append((token, last.log_softmax(-1)))
                nxt = follow[t] if follow is not None else token
                if nxt is not None:
                    seq = torch.cat([seq, torch.tensor([[nxt]], device=seq.device)], 1)
            return out


        dev = model.cfg.device
        a = run(model, tokens, torch.Generator(device=dev).manual_seed(SEED))
        b = run(model_b, tokens, torch.Generator(device=dev).manual_seed(SEED))
        read = run(model_b, tokens, follow=[t for t, _ in a])  # B along A's text
        data = {{"kl": [_kl(la, lr) for (_, la), (_, lr) in zip(a, read)],
                 "a_id": [t for t, _ in a], "b_id": [t for t, _ in b]}}
        """,
    )  # fmt: skip


NEUTRAL = Path(__file__).resolve().parent.parent / "engine" / "neutral_texts.txt"


def _load_sae(info: SaeInfo) -> str:
    """Snippet lines that load side A's SAE with SAELens (as the SAE latents view's bundle)."""
    if info.release:
        return f"sae = SAE.from_pretrained({info.release!r}, {info.sae_id!r})"
    return f"sae = SAE.load_from_disk({relative_path(info.path or '')!r})"


def latents(result: DiffLatentsResult, rows: list[dict], b: str) -> BundleSpec:
    """The prompt's strongest latent changes: each latent's activation on A and on B at the
    token where it changed most (side A's SAE encoding both sides' activations)."""
    where = [(r["pos"], r["index"]) for r in rows]
    return _spec(
        {"a": Array(("latent",), [r["a"] for r in rows]),
         "b": Array(("latent",), [r["b"] for r in rows])},
        "", b,
        f"""
        from sae_lens import SAE

        {_load_sae(result.sae)}
        HOOK = sae.cfg.metadata.hook_name
        WHERE = {where!r}  # (pos, latent) of each bar
        acts_a = sae.encode(cache[HOOK][0])  # [pos, d_sae]
        acts_b = sae.encode(cache_b[HOOK][0])
        data = {{"a": [float(acts_a[p, i]) for p, i in WHERE],
                 "b": [float(acts_b[p, i]) for p, i in WHERE]}}
        """,
        labels={"latent": [f"#{r['index']} {r['label']}" for r in rows]},
    )  # fmt: skip


def builtin_texts(n: int) -> list[str] | None:
    """The engine's built-in neutral texts (the text-set jobs' default), the first `n`."""
    if not NEUTRAL.is_file():
        return None
    return [t for t in NEUTRAL.read_text(encoding="utf-8").splitlines() if t.strip()][:n]


def adiff_lens(result: AdiffLensResult, texts: list[str], b: str) -> BundleSpec:
    """The activation-difference lens over the built-in texts (as chat requests when the job
    wrapped them: each a user turn in side B's chat template, else A's): the mean of
    resid_B − resid_A over their first positions at each layer, read through side B's
    unembedding (``engine/adiff.py``: ``token_rows``, ``mean_difference``, ``unembed_read``)."""
    layers = result.mean.layers
    k = len(layers[0].top_tokens) if layers else 1
    return _spec(
        {"top_id": Array(("row", "rank"), [[t.id for t in x.top_tokens] for x in layers]),
         "top_value": Array(("row", "rank"), [x.top_values for x in layers]),
         "norm": Array(("row",), [x.norm for x in layers])},
        source("adiff"), b,
        f"""
        TEXTS = {texts!r}
        POSITIONS, K, CHAT = {result.positions}, {k}, {result.chat!r}
        hooks = resid_hooks(model.cfg.n_layers)
        tok = model.tokenizer  # the chat template: B's (the chat model of a pair), else A's
        if CHAT and getattr(model_b.tokenizer, "chat_template", None):
            tok = model_b.tokenizer
        rows = token_rows(tok, TEXTS, min(model.cfg.n_ctx, model_b.cfg.n_ctx), chat=CHAT)
        _, mean, _, _ = mean_difference(model, model_b, rows, hooks, POSITIONS)  # [hook, d]
        skip = set(model_b.tokenizer.all_special_ids)
        reads = [unembed_read(model_b, mean[j], K, skip) for j in range(len(hooks))]
        data = {{"top_id": [r[0] for r in reads], "top_value": [r[1] for r in reads],
                 "norm": mean.norm(dim=-1).tolist()}}
        """,
        labels={"row": [x.hook for x in layers]},
    )  # fmt: skip


def latent_set(
    result: LatentDiffSetResult, rows: list[dict], texts: list[str], b: str
) -> BundleSpec:
    """Each listed latent's mean activation on A and on B over every content token of the
    built-in texts (side A's SAE on both sides' activations)."""
    return _spec(
        {"mean_a": Array(("latent",), [r["a"] for r in rows]),
         "mean_b": Array(("latent",), [r["b"] for r in rows])},
        "", b,
        f"""
        from sae_lens import SAE

        {_load_sae(result.sae)}
        HOOK = sae.cfg.metadata.hook_name
        TEXTS = {texts!r}
        LATENTS = {[r["index"] for r in rows]!r}
        special = set(model.tokenizer.all_special_ids)
        sum_a = sum_b = 0.0
        n = 0
        for text in TEXTS:
            ids = [model.tokenizer.bos_token_id] + model.tokenizer(text, add_special_tokens=False)["input_ids"]
            x = torch.tensor([ids[: model.cfg.n_ctx]])
            keep = torch.tensor([t not in special for t in x[0].tolist()])[:, None]
            a = sae.encode(model.run_with_cache(x)[1][HOOK][0]) * keep
            b = sae.encode(model_b.run_with_cache(x)[1][HOOK][0]) * keep
            sum_a, sum_b, n = sum_a + a.double().sum(0), sum_b + b.double().sum(0), n + int(keep.sum())
        data = {{"mean_a": (sum_a / n)[LATENTS].tolist(), "mean_b": (sum_b / n)[LATENTS].tolist()}}
        """,
        labels={"latent": [f"#{r['index']} {r['label']}" for r in rows]},
    )  # fmt: skip
