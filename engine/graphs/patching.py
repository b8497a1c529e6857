"""Component graphs for any model: heads and MLPs as nodes, from attribution patching.

The metric is ``m = logit[target] - logit[baseline]`` (or ``logit[target]``) at the last
position of the clean prompt. With ``delta_u = out_u(clean) - out_u(corrupted)`` the output a
component ``u`` writes into the residual stream (summed over positions):

- node score ``u``: ``delta_u . dm/d out_u``, the first-order estimate of how much ``m`` drops
  when ``u`` is patched with its corrupted activation (attribution patching);
- edge ``u -> d``: ``delta_u . dm/d in_d``, where ``in_d`` is what ``d`` reads: a head's
  query, key and value inputs (TransformerLens's split qkv inputs), an MLP's input, the final
  residual stream for the logit node (edge attribution patching, EAP).

The result has the node/link schema of circuit-tracer's graph files, so the graph view draws
it: ``ctx_idx`` is the component's slot (head index, MLP after the heads) and the slot names
stand in for the prompt tokens; ``influence`` is the cumulative share of |score| by rank,
as circuit-tracer's ``influence`` is for latents, so one threshold prunes both.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

Vec = Float[Tensor, "pos d_model"]


@contextmanager
def _split_inputs(model: HookedTransformer):
    qkv, mlp_in = model.cfg.use_split_qkv_input, model.cfg.use_hook_mlp_in
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    try:
        yield
    finally:
        model.set_use_split_qkv_input(qkv)
        model.set_use_hook_mlp_in(mlp_in)


def _outputs(model: HookedTransformer, cache: dict) -> dict[str, Vec]:
    """What each component writes into the residual stream, by node id."""
    out = {"E": cache["hook_embed"][0]}
    for layer in range(model.cfg.n_layers):
        heads = torch.einsum(
            "phd,hdm->phm", cache[f"blocks.{layer}.attn.hook_z"][0], model.W_O[layer]
        )
        for h in range(model.cfg.n_heads):
            out[f"A{layer}.{h}"] = heads[:, h]
        out[f"M{layer}"] = cache[f"blocks.{layer}.hook_mlp_out"][0]
    return out


def _out_names(n_layers: int) -> list[str]:
    names = ["hook_embed"]
    for layer in range(n_layers):
        names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
    return names


def _in_names(n_layers: int) -> list[str]:
    names = [f"blocks.{n_layers - 1}.hook_resid_post"]
    for layer in range(n_layers):
        names += [f"blocks.{layer}.hook_{x}_input" for x in "qkv"] + [f"blocks.{layer}.hook_mlp_in"]
    return names


def _clean_pass(model, ids, target, baseline):
    """Clean activations and gradients of the metric at every output and input hook."""
    n = model.cfg.n_layers
    acts, grads, leaves = {}, {}, []
    names = set(_out_names(n) + _in_names(n))

    def keep(t, hook):
        if hook.name == "hook_embed":  # the graph starts here; no parameter gets a .grad
            t = t.detach().requires_grad_(True)
            leaves.append(t)
        acts[hook.name] = t.detach()
        t.register_hook(lambda g, name=hook.name: grads.__setitem__(name, g.detach()))
        return t

    with torch.enable_grad(), model.hooks(fwd_hooks=[(lambda nm: nm in names, keep)]):
        logits = model(torch.tensor([ids], device=model.cfg.device))
        last = logits[0, -1]
        metric = last[target] - (last[baseline] if baseline is not None else 0.0)
        torch.autograd.backward(metric, inputs=leaves)
    return float(metric.detach()), acts, grads


def _input_grads(model: HookedTransformer, grads: dict) -> dict[str, Vec]:
    """d metric / d (what each reader reads), by reader node id."""
    n = model.cfg.n_layers
    out = {"L": grads[f"blocks.{n - 1}.hook_resid_post"][0]}
    for layer in range(n):
        qkv = sum(grads[f"blocks.{layer}.hook_{x}_input"][0] for x in "qkv")  # [pos, head, d]
        for h in range(model.cfg.n_heads):
            out[f"A{layer}.{h}"] = qkv[:, h]
        out[f"M{layer}"] = grads[f"blocks.{layer}.hook_mlp_in"][0]
    return out


def _layer(node: str) -> int:
    """Where a node sits in the stack: E -1, heads of layer l at l, MLP l at l + 0.5, logit ∞."""
    if node == "E":
        return -1
    if node == "L":
        return 10**9
    return int(node[1:].split(".")[0])


def _reads_from(reader: str, writer: str) -> bool:
    if reader == "L":
        return writer != "L"
    lw, lr = _layer(writer), _layer(reader)
    if writer == "E":
        return True
    if reader.startswith("A"):
        return lw < lr
    return lw < lr or (lw == lr and writer.startswith("A"))  # an MLP reads its own layer's heads


def _node_scores(model, acts: dict, corr: dict, grads: dict) -> dict[str, float]:
    """delta . gradient at each component's own hook (z for heads: same as in the residual)."""

    def dot(name: str) -> Tensor:
        return (acts[name][0] - corr[name][0]) * grads[name][0]

    node = {"E": float(dot("hook_embed").sum())}
    for layer in range(model.cfg.n_layers):
        per_head = dot(f"blocks.{layer}.attn.hook_z").sum((0, 2))
        node |= {f"A{layer}.{h}": float(v) for h, v in enumerate(per_head)}
        node[f"M{layer}"] = float(dot(f"blocks.{layer}.hook_mlp_out").sum())
    return node


def scores(
    model: HookedTransformer,
    clean: list[int],
    corrupted: list[int],
    target: int,
    baseline: int | None,
) -> tuple[float, dict[str, float], dict[tuple[str, str], float]]:
    """(metric, node scores, edge scores (writer, reader)) by attribution patching."""
    n = model.cfg.n_layers
    names = set(_out_names(n))
    with _split_inputs(model):
        metric, acts, grads = _clean_pass(model, clean, target, baseline)
        with torch.no_grad():
            _, corr = model.run_with_cache(
                torch.tensor([corrupted], device=model.cfg.device),
                names_filter=lambda nm: nm in names,
            )
    with torch.no_grad():
        clean_out, corr_out = _outputs(model, acts), _outputs(model, corr)
        delta = {k: clean_out[k] - corr_out[k] for k in clean_out}
        node = _node_scores(model, acts, corr, grads)
        edge = {
            (w, r): float((delta[w] * g).sum())
            for r, g in _input_grads(model, grads).items()
            for w in delta
            if _reads_from(r, w)
        }
    return metric, node, edge


def _cumulative_share(values: dict[str, float]) -> dict[str, float]:
    """Per key, the share of total |value| covered by it and every larger one (1 = least)."""
    order = sorted(values, key=lambda k: -abs(values[k]))
    total = sum(abs(v) for v in values.values()) or 1.0
    out, run = {}, 0.0
    for k in order:
        run += abs(values[k])
        out[k] = run / total
    return out


def _node(node_id: str, n_layers: int, n_heads: int, score: float, influence: float) -> dict:
    if node_id == "E":
        layer, slot, kind, label = "E", n_heads // 2, "embedding", "token embeddings"
    elif node_id == "L":
        layer, slot, kind, label = str(n_layers + 1), n_heads // 2, "logit", "metric"
    elif node_id.startswith("A"):
        lay, head = node_id[1:].split(".")
        layer, slot, kind, label = lay, int(head), "attention head", f"L{lay}H{head}"
    else:
        layer, slot, kind, label = node_id[1:], n_heads, "mlp", f"MLP {node_id[1:]}"
    return {
        "node_id": node_id, "feature": -1, "layer": layer, "ctx_idx": slot,
        "feature_type": kind, "jsNodeId": node_id, "clerp": label,
        "influence": influence, "activation": score, "token_prob": 0.0,
        "is_target_logit": node_id == "L", "run_idx": 0, "reverse_ctx_idx": 0,
    }  # fmt: skip


def component_graph(
    model: HookedTransformer,
    clean: list[int],
    corrupted: list[int],
    target: int,
    baseline: int | None,
    *,
    slug: str,
    edge_threshold: float = 0.9,
) -> dict:
    """The component graph as a circuit-tracer-schema graph document."""
    cfg = model.cfg
    metric, node, edge = scores(model, clean, corrupted, target, baseline)
    node["L"] = metric
    influence = _cumulative_share({k: v for k, v in node.items() if k != "L"}) | {"L": 0.0}
    shares = _cumulative_share({f"{w}>{r}": v for (w, r), v in edge.items()})
    first = min(shares.values(), default=0.0)
    kept = {e for e, share in shares.items() if share <= edge_threshold or share == first}
    links = [
        {"source": w, "target": r, "weight": v}
        for (w, r), v in edge.items()
        if f"{w}>{r}" in kept and v != 0.0
    ]
    tok = model.tokenizer
    slots = [f"H{h}" for h in range(cfg.n_heads)] + ["MLP"]
    return {
        "metadata": {
            "slug": slug, "scan": "attribution-patching", "transcoder_list": [],
            "prompt_tokens": slots, "prompt": tok.decode(clean[1:]) if tok else "",
            "node_threshold": None, "schema_version": 1,
            "info": {
                "kind": "component", "metric": "logit difference" if baseline is not None
                else "logit", "target": target, "baseline": baseline,
                "corrupted": tok.decode(corrupted[1:]) if tok else "",
            },
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "",
                    "sg_pos": ""},
        "nodes": [_node(k, cfg.n_layers, cfg.n_heads, v, influence[k]) for k, v in node.items()],
        "links": links,
    }  # fmt: skip
