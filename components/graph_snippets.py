"""The attribution graph view's figure bundle: the nodes and links its figure draws, and a
snippet that rebuilds the graph on its own and picks them the same way (pure functions of
the saved graph; see ``components.bundles``).

Arrays: ``nodes`` [node, node_field] and ``links`` [link, link_field], one row per node or
link that ``graph_figures.visible`` selects, the selection ``graph_figure`` draws (nodes in
the graph file's order, links strongest first). A node row is ``node_row``'s fields; a link
row is its source and target as rows of ``nodes``, and its weight. The node ids label the
node rows.

The snippet rebuilds the graph the way the engine made it, from the saved graph's record
(``GraphInfo``: prompt and request parameters):

- a transcoder graph: circuit-tracer's ``ReplacementModel`` around the snippet header's model
  and the transcoders shipped beside its weights, built as ``engine/graphs/replacement.py``
  builds it (offline), or ``ReplacementModel.from_pretrained`` for a model whose transcoders
  circuit-tracer publishes; ``attribute`` with the saved parameters; pruning, nodes and links
  as ``engine/graphs/files.py`` writes the graph file;
- a component graph: attribution patching in TransformerLens, as ``engine/graphs/patching.py``.

Then it applies the figure's selection (threshold, pins, strongest links) and fills ``data``.
"""

from __future__ import annotations

import inspect
import textwrap

from components import graph_figures as gf
from components.bundles import Array, BundleSpec
from engine.graphs.schemas import PUBLISHED

KINDS = list(gf.KIND_STYLE)  # a node's kind code is its feature_type's index here
NODE_FIELDS = ("kind", "layer", "pos", "index", "influence", "activation", "prob")
LINK_FIELDS = ("source", "target", "weight")


def node_row(node: dict, kinds: list[str]) -> list:
    """A node's numbers: kind (index into `kinds`), layer (-1: embeddings; logits sit at
    n_layers + 1), pos (a component graph: the slot), index (a latent's index, the token id of
    an embedding or a logit, else -1), influence (cumulative share; smaller is stronger),
    activation (a component's score), prob (a logit's probability)."""
    kind, parts = node["feature_type"], node["node_id"].split("_")
    if kind == "cross layer transcoder" or (kind == "embedding" and len(parts) == 3):
        index = int(parts[1])
    else:
        index = node["feature"] if kind == "logit" else -1
    layer = -1 if node["layer"] == "E" else int(node["layer"])
    influence, activation = node.get("influence"), node.get("activation")
    prob = node.get("token_prob") or 0.0
    return [kinds.index(kind), layer, node["ctx_idx"], index, influence, activation, prob]


def graph_bundle(
    doc: dict,
    info: dict,
    *,
    threshold: float,
    max_links: int,
    pinned: list[str] | None = None,
    only_pinned: bool = False,
    model: dict | None = None,
) -> BundleSpec | None:
    """The bundle of ``graph_figure(doc, threshold=..., max_links=..., pinned=...,
    only_pinned=...)``; `info` is the saved graph's record, `model` the loaded model's info.
    None where no snippet can rebuild it (a transcoder graph of a model whose transcoders
    are neither beside its weights nor published)."""
    pins = list(pinned or [])
    if info["kind"] == "component":
        code, packages = _component_code(doc, info), ("transformer_lens",)
    else:
        load = _replacement_code(model)
        if load is None:
            return None
        code, packages = load + _attribute_code(doc, info), ("transformer_lens", "circuit_tracer")
    shown = gf.visible(doc, threshold, pinned=pins, max_links=max_links, only_pinned=only_pinned)
    row_of = {n["node_id"]: i for i, n in enumerate(shown.nodes)}
    links = [[row_of[lk["source"]], row_of[lk["target"]], lk["weight"]] for lk in shown.links]
    ids = [n["node_id"] for n in shown.nodes]
    return BundleSpec(
        data={
            "nodes": Array(("node", "node_field"), [node_row(n, KINDS) for n in shown.nodes]),
            "links": Array(("link", "link_field"), links),
        },
        code=code + _selection_code(threshold, max_links, pins, only_pinned),
        labels={
            "node": ids,
            "node_field": list(NODE_FIELDS),
            "link": [f"{lk['source']} -> {lk['target']}" for lk in shown.links],
            "link_field": list(LINK_FIELDS),
        },
        packages=packages,
    )


def _selection_code(threshold: float, max_links: int, pinned: list[str], only: bool) -> str:
    kinds = "".join(f"    {k!r},\n" for k in KINDS)
    return f"""
# What the figure shows (components/graph_figures.py's own selection): nodes within the
# influence threshold (embeddings, logits and pinned nodes always), and the MAX_LINKS strongest
# links among them.
from collections import namedtuple

THRESHOLD, MAX_LINKS = {threshold!r}, {max_links!r}
PINNED, ONLY_PINNED = {pinned!r}, {only!r}
ALWAYS = {{{", ".join(repr(k) for k in sorted(gf.ALWAYS))}}}
Shown = namedtuple("Shown", "nodes links")


{inspect.getsource(gf.visible)}

shown = visible({{"nodes": nodes, "links": links}}, THRESHOLD, pinned=PINNED, max_links=MAX_LINKS,
                only_pinned=ONLY_PINNED)
row_of = {{n["node_id"]: i for i, n in enumerate(shown.nodes)}}


{inspect.getsource(node_row)}

KINDS = [  # a node's kind code is the index of its feature_type here
{kinds}]
node_ids = [n["node_id"] for n in shown.nodes]  # labels of the node rows
data = {{
    # per node: {", ".join(NODE_FIELDS)}
    "nodes": [node_row(n, KINDS) for n in shown.nodes],
    # per link: source and target (rows of "nodes"), weight; strongest first
    "links": [[row_of[lk["source"]], row_of[lk["target"]], lk["weight"]] for lk in shown.links],
}}
"""


def _replacement_code(model: dict | None) -> str | None:
    """Snippet lines that make `rm`, the replacement model, as the engine does."""
    model = model or {}
    imports = """\
from circuit_tracer import ReplacementModel, attribute
from circuit_tracer.graph import prune_graph
from circuit_tracer.utils.create_graph_files import create_nodes, create_used_nodes_and_edges
"""
    if model.get("source") == "local":
        return imports + _LOCAL_REPLACEMENT
    name = model.get("name")
    if name not in PUBLISHED:
        return None
    dtype = model.get("dtype") or "float32"
    return imports + textwrap.dedent(f"""
        # circuit-tracer loads its own copy of the model with the transcoders it publishes for
        # it, as the engine does for a hub model.
        del model, logits, cache
        rm = ReplacementModel.from_pretrained(
            MODEL, {PUBLISHED[name]!r}, backend="transformerlens", dtype=torch.{dtype}
        )
        """)  # fmt: skip


_LOCAL_REPLACEMENT = """\
import copy
from pathlib import Path

import yaml
from circuit_tracer.utils.hf_utils import load_transcoders

# circuit-tracer's replacement model, built as the Interpscope engine builds it offline
# (engine/graphs/replacement.py): the transcoders shipped beside the weights
# (transcoders/config.yaml, circuit-tracer's layout), trained on the model processed as above,
# around a copy of its weights, with the MLP and unembedding weights renamed to the `old_`
# modules circuit-tracer wraps them in.
TRANSCODERS = Path(MODEL) / "transcoders"
config = yaml.safe_load((TRANSCODERS / "config.yaml").read_text())
config["transcoders"] = [str((TRANSCODERS / p).resolve()) for p in config["transcoders"]]
transcoders = load_transcoders(
    config, device=torch.device(model.cfg.device), dtype=model.cfg.dtype,
    lazy_encoder=False, lazy_decoder=False,
)
rm = ReplacementModel.from_config(
    copy.deepcopy(model.cfg), transcoders, backend="transformerlens", tokenizer=model.tokenizer
)


def renamed(key):
    if key.startswith("unembed."):
        return "unembed.old_unembed." + key[len("unembed.") :]
    return key.replace(".mlp.", ".mlp.old_mlp.", 1)


state = {renamed(k): v for k, v in model.state_dict().items()}
missing, unexpected = rm.load_state_dict(state, strict=False)
assert not unexpected and all(k.startswith("transcoders.") for k in missing), missing
rm.eval()
"""


def _target_id(doc: dict) -> int | None:
    """The token a graph made for one target attributes (its target logit node's token)."""
    node = next((n for n in doc["nodes"] if n.get("is_target_logit")), None)
    return None if node is None else int(node["feature"])


def _attribute_code(doc: dict, info: dict) -> str:
    p = info["params"]
    target = _target_id(doc) if p.get("target") is not None else None
    return f"""
# attribute() with the saved graph's parameters (circuit-tracer's attribution graph, unpruned)
ATTRIBUTE = dict(
    max_n_logits={p["max_n_logits"]!r}, desired_logit_prob={p["desired_logit_prob"]!r},
    batch_size={p["batch_size"]!r}, max_feature_nodes={p["max_feature_nodes"]!r},
)
TARGET = {target!r}  # one token id to attribute; None: the most likely next tokens
with torch.enable_grad():
    graph = attribute(
        tokens[0], rm, attribution_targets=None if TARGET is None else torch.tensor([TARGET]),
        **ATTRIBUTE,
    )

# Pruned, and nodes and links as circuit-tracer's create_graph_files writes the graph file
NODE_THRESHOLD, EDGE_THRESHOLD = {p["node_threshold"]!r}, {p["edge_threshold"]!r}
graph.to("cuda" if torch.cuda.is_available() else "cpu")
node_mask, edge_mask, scores = (
    t.cpu() for t in prune_graph(graph, NODE_THRESHOLD, EDGE_THRESHOLD)
)
graph.to("cpu")
kept = create_nodes(graph, node_mask, rm.tokenizer, scores)
for n in kept.values():  # error nodes: "<layer>_-1_<pos>", not a layer-0 latent's id (as the app)
    if n.feature_type == "mlp reconstruction error":
        n.node_id = f"{{n.layer}}_-1_{{n.ctx_idx}}"
used_nodes, links = create_used_nodes_and_edges(graph, kept, edge_mask)
nodes = [n.model_dump() for n in used_nodes]
"""


def _component_code(doc: dict, info: dict) -> str:
    meta = doc["metadata"].get("info", {})
    p = info["params"]
    return (
        f"""
# Attribution patching from the corrupted prompt to the clean one (engine/graphs/patching.py):
# metric m = logit[TARGET] - logit[BASELINE] (or logit[TARGET]) at the last position.
CORRUPTED = {p["corrupted"]!r}
TARGET, BASELINE = {meta.get("target")!r}, {meta.get("baseline")!r}  # token ids
EDGE_THRESHOLD = {p["edge_threshold"]!r}  # keep edges up to this share of |score|
"""
        + _PATCHING
    )


_PATCHING = """\
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
model.set_use_split_qkv_input(True)  # hooks on each head's query, key and value inputs
model.set_use_hook_mlp_in(True)
OUT = ["hook_embed"]  # what each component writes
OUT += [f"blocks.{la}.{h}" for la in range(n_layers) for h in ("attn.hook_z", "hook_mlp_out")]
IN = [f"blocks.{n_layers - 1}.hook_resid_post"]  # what each component (and the logits) reads
IN += [f"blocks.{la}.hook_{x}" for la in range(n_layers)
       for x in ("q_input", "k_input", "v_input", "mlp_in")]
acts, grads, leaves = {}, {}, []


def keep(t, hook):  # clean activations, and gradients of m at each of them
    if hook.name == "hook_embed":  # the graph starts here
        t = t.detach().requires_grad_(True)
        leaves.append(t)
    acts[hook.name] = t.detach()
    t.register_hook(lambda g, name=hook.name: grads.__setitem__(name, g.detach()))
    return t


with torch.enable_grad(), model.hooks(fwd_hooks=[(lambda name: name in OUT + IN, keep)]):
    last = model(tokens)[0, -1]
    metric = last[TARGET] - (last[BASELINE] if BASELINE is not None else 0.0)
    torch.autograd.backward(metric, inputs=leaves)
_, corr = model.run_with_cache(model.to_tokens(CORRUPTED), names_filter=lambda n: n in OUT)


def written(c):  # node id -> what it writes into the residual stream [pos, d_model]
    out = {"E": c["hook_embed"][0]}
    for la in range(n_layers):
        heads = torch.einsum("phd,hdm->phm", c[f"blocks.{la}.attn.hook_z"][0], model.W_O[la])
        out |= {f"A{la}.{h}": heads[:, h] for h in range(n_heads)}
        out[f"M{la}"] = c[f"blocks.{la}.hook_mlp_out"][0]
    return out


def read_grads():  # node id -> d m / d (what it reads) [pos, d_model]
    out = {"L": grads[f"blocks.{n_layers - 1}.hook_resid_post"][0]}
    for la in range(n_layers):
        qkv = sum(grads[f"blocks.{la}.hook_{x}_input"][0] for x in "qkv")  # [pos, head, d]
        out |= {f"A{la}.{h}": qkv[:, h] for h in range(n_heads)}
        out[f"M{la}"] = grads[f"blocks.{la}.hook_mlp_in"][0]
    return out


def depth(node):  # E -1, layer l's heads and MLP at l
    return -1 if node == "E" else int(node[1:].split(".")[0])


def reads_from(reader, writer):  # an MLP reads its own layer's heads; a head earlier layers
    if reader == "L" or writer == "E":
        return True
    lw, lr = depth(writer), depth(reader)
    return lw < lr or (reader.startswith("M") and lw == lr and writer.startswith("A"))


def dot(name):  # (clean - corrupted) . gradient, at a component's own hook
    return (acts[name][0] - corr[name][0]) * grads[name][0]


clean_out, corr_out = written(acts), written(corr)
delta = {k: clean_out[k] - corr_out[k] for k in clean_out}
score = {"E": float(dot("hook_embed").sum())}  # node scores: first-order patching effects
for la in range(n_layers):
    per_head = dot(f"blocks.{la}.attn.hook_z").sum((0, 2))
    score |= {f"A{la}.{h}": float(v) for h, v in enumerate(per_head)}
    score[f"M{la}"] = float(dot(f"blocks.{la}.hook_mlp_out").sum())
edge = {  # (writer, reader): delta_writer . d m / d in_reader (edge attribution patching)
    (w, r): float((delta[w] * g).sum())
    for r, g in read_grads().items() for w in delta if reads_from(r, w)
}
score["L"] = float(metric)


def cumulative_share(values):  # the share of total |value| up to and including each key
    order = sorted(values, key=lambda k: -abs(values[k]))
    total, run, out = sum(abs(v) for v in values.values()) or 1.0, 0.0, {}
    for k in order:
        run += abs(values[k])
        out[k] = run / total
    return out


influence = cumulative_share({k: v for k, v in score.items() if k != "L"}) | {"L": 0.0}
shares = cumulative_share({f"{w}>{r}": v for (w, r), v in edge.items()})
first = min(shares.values(), default=0.0)
links = [
    {"source": w, "target": r, "weight": v} for (w, r), v in edge.items()
    if (shares[f"{w}>{r}"] <= EDGE_THRESHOLD or shares[f"{w}>{r}"] == first) and v != 0.0
]


def component_node(k):  # a graph-file node: heads in slots 0..n_heads-1, the MLP after them
    if k in ("E", "L"):
        layer, slot = ("E" if k == "E" else str(n_layers + 1)), n_heads // 2
        kind = "embedding" if k == "E" else "logit"
    elif k.startswith("A"):
        layer, head = k[1:].split(".")
        slot, kind = int(head), "attention head"
    else:
        layer, slot, kind = k[1:], n_heads, "mlp"
    return {"node_id": k, "feature": -1, "layer": layer, "ctx_idx": slot, "feature_type": kind,
            "influence": influence[k], "activation": score[k], "token_prob": 0.0}


nodes = [component_node(k) for k in score]
"""
