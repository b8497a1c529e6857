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
  and the transcoders shipped beside its weights, built by ``engine/graphs/replacement.py``'s
  own functions (offline), or ``ReplacementModel.from_pretrained`` for a model whose
  transcoders circuit-tracer publishes; ``attribute`` with the saved parameters; pruning,
  nodes and links as ``engine/graphs/files.py`` writes the graph file;
- a component graph: ``engine/graphs/patching.py``'s own attribution patching (its source,
  read by ``components.engine_source``).

Then it applies the figure's selection (threshold, pins, strongest links) and fills ``data``.
"""

from __future__ import annotations

import inspect
import textwrap

from components import graph_figures as gf
from components.bundles import Array, BundleSpec
from components.engine_source import engine_source
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


_LOCAL_REPLACEMENT = (
    engine_source(
        (
            "engine.graphs.replacement",
            ("CONFIG", "transcoder_files", "load_transcoder_set", "_renamed",
             "build_replacement_model"),
        )
    )
    + """
# circuit-tracer's replacement model, built as the Interpscope engine builds it offline (the
# functions above are engine/graphs/replacement.py's own): the transcoders shipped beside the
# weights (transcoders/config.yaml, circuit-tracer's layout), trained on the model processed
# as above, around a copy of its weights.
transcoders = load_transcoder_set(
    Path(MODEL) / "transcoders", model.cfg.device, model.cfg.dtype
).requires_grad_(False)
rm = build_replacement_model(model, transcoders)
"""
)  # fmt: skip


def _target_id(doc: dict) -> int | None:
    """The token a graph made for one target attributes (its target logit node's token)."""
    node = next((n for n in doc["nodes"] if n.get("is_target_logit")), None)
    return None if node is None else int(node["feature"])


def _attribute_code(doc: dict, info: dict) -> str:
    p = info["params"]
    target = _target_id(doc) if p.get("target") is not None else None
    return (
        GRAPH_FILES
        + f"""
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

# Pruned, and nodes and links as the engine writes the graph file (engine/graphs/files.py's
# own functions, above)
NODE_THRESHOLD, EDGE_THRESHOLD = {p["node_threshold"]!r}, {p["edge_threshold"]!r}
used_nodes, links = pruned_nodes_and_links(graph, rm.tokenizer, NODE_THRESHOLD, EDGE_THRESHOLD)
nodes = [n.model_dump() for n in used_nodes]
"""
    )


def _component_code(doc: dict, info: dict) -> str:
    meta = doc["metadata"].get("info", {})
    p = info["params"]
    return (
        "\n"
        + PATCHING
        + f"""
# Attribution patching from the corrupted prompt to the clean one, as the engine computes it
# (the functions above are engine/graphs/patching.py's own): metric m = logit[TARGET] -
# logit[BASELINE] (or logit[TARGET]) at the last position.
CORRUPTED = {p["corrupted"]!r}
TARGET, BASELINE = {meta.get("target")!r}, {meta.get("baseline")!r}  # token ids
EDGE_THRESHOLD = {p["edge_threshold"]!r}  # keep edges up to this share of |score|
graph = component_graph(
    model, tokens[0].tolist(), model.to_tokens(CORRUPTED)[0].tolist(), TARGET, BASELINE,
    slug="snippet", edge_threshold=EDGE_THRESHOLD,
)
nodes, links = graph["nodes"], graph["links"]
"""
    )


# engine/graphs/files.py's pruning: the nodes and links of a transcoder graph's file
GRAPH_FILES = engine_source(
    ("engine.graphs.files", ("fix_error_node_ids", "pruned_nodes_and_links"))
)

# engine/graphs/patching.py, whole: the component graph the engine makes
PATCHING = engine_source(
    (
        "engine.graphs.patching",
        ("Vec", "_split_inputs", "_outputs", "_out_names", "_in_names", "_clean_pass",
         "_input_grads", "_layer", "_reads_from", "_node_scores", "scores", "_cumulative_share",
         "_node", "component_graph"),
    )
)  # fmt: skip
