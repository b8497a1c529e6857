"""The attribution graph as a plotly figure, from circuit-tracer's graph JSON (pure).

Nodes sit at (position, layer): token embeddings at the bottom, one row per layer, the logit
nodes on top; nodes that share a cell are spread across it, most influential in the middle.
A node's size grows with its influence (circuit-tracer's ``influence`` is the cumulative
share of influence up to that node, so a *smaller* value means a *more* influential node);
its colour says its kind. Edges are drawn by sign (blue positive, red negative) and weight
(three widths). The same schema carries component graphs (heads and MLPs as nodes, their
slot in place of the position).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas  # noqa: F401  plotly imports it lazily, via sys.modules: two script threads
import plotly.graph_objects as go  # racing that import see a half-imported pandas and fail

from components.safe import plot_text
from components.theme import apply, show_token

KIND_STYLE = {  # feature_type -> (legend name, colour, symbol)
    "cross layer transcoder": ("latent", "#6a51a3", "circle"),
    "mlp reconstruction error": ("error", "#969696", "square"),
    "embedding": ("embedding", "#2ca02c", "diamond"),
    "logit": ("logit", "#ff7f0e", "hexagon"),
    "attention head": ("head", "#1f77b4", "circle"),
    "mlp": ("MLP", "#8c564b", "square"),
}
POS_EDGE, NEG_EDGE = "#2166ac", "#b2182b"
ALWAYS = {"embedding", "logit"}


@dataclass(frozen=True)
class Shown:
    nodes: list[dict]
    links: list[dict]


def row(node: dict) -> int:
    """Drawing row: embeddings 0, layer l at l + 1, logits (layer n_layers + 1) on top."""
    layer = node["layer"]
    if layer == "E":
        return 0
    return int(layer) if node["feature_type"] == "logit" else int(layer) + 1


def label(node: dict) -> str:
    kind = node["feature_type"]
    if kind == "cross layer transcoder":
        idx = latent_index(node)
        text = f"L{node['layer']}#{idx}"
        return f"{text} {node['clerp']}" if node.get("clerp") else text
    if kind == "mlp reconstruction error":
        return f"error L{node['layer']} pos {node['ctx_idx']}"
    if kind == "embedding" and node["node_id"].startswith("E_"):
        return f"token pos {node['ctx_idx']}"
    return node.get("clerp") or node["node_id"]


def latent_index(node: dict) -> int:
    """A transcoder latent's index (node ids are ``<layer>_<index>_<pos>``)."""
    return int(node["node_id"].split("_")[1])


def visible(doc: dict, threshold: float, *, pinned: list[str], max_links: int,
            only_pinned: bool = False) -> Shown:  # fmt: skip
    """Nodes within the influence `threshold` (plus embeddings, logits, pinned ones) and the
    `max_links` strongest links among them."""
    pins = set(pinned)
    nodes = [
        n for n in doc["nodes"]
        if n["node_id"] in pins or (not only_pinned and (
            n["feature_type"] in ALWAYS or (n.get("influence") or 0.0) <= threshold))
    ]  # fmt: skip
    ids = {n["node_id"] for n in nodes}
    links = [lk for lk in doc["links"] if lk["source"] in ids and lk["target"] in ids]
    links = sorted(links, key=lambda lk: -abs(lk["weight"]))[:max_links]
    return Shown(nodes, links)


def positions(nodes: list[dict]) -> dict[str, tuple[float, int]]:
    """(x, y) of each node: spread within its (position, row) cell by influence."""
    cells: dict[tuple[int, int], list[dict]] = {}
    for n in nodes:
        cells.setdefault((n["ctx_idx"], row(n)), []).append(n)
    out = {}
    for (pos, y), members in cells.items():
        members.sort(key=lambda n: n.get("influence") or 0.0)
        k = len(members)
        for i, n in enumerate(members):
            rank = (i + 1) // 2 * (1 if i % 2 else -1)  # 0, +1, -1, +2, ... from the middle
            out[n["node_id"]] = (pos + (0.8 * rank / k if k > 1 else 0.0), y)
    return out


def size(node: dict) -> float:
    if node["feature_type"] in ALWAYS:
        return 14.0
    influence = min(max(node.get("influence") or 0.0, 0.0), 1.0)
    return 7.0 + 17.0 * (1.0 - influence)


def _edge_traces(fig: go.Figure, links: list[dict], xy: dict) -> None:
    if not links:
        return
    top = max(abs(lk["weight"]) for lk in links) or 1.0
    for sign, colour in ((1, POS_EDGE), (-1, NEG_EDGE)):
        for lo, hi, width, alpha in ((0.0, 0.1, 0.6, 0.25), (0.1, 0.4, 1.4, 0.45),
                                     (0.4, 1.01, 3.0, 0.7)):  # fmt: skip
            xs: list[float | None] = []
            ys: list[float | None] = []
            for lk in links:
                share = abs(lk["weight"]) / top
                if (lk["weight"] > 0) == (sign > 0) and lo <= share < hi:
                    (x0, y0), (x1, y1) = xy[lk["source"]], xy[lk["target"]]
                    xs += [x0, x1, None]
                    ys += [y0, y1, None]
            if xs:
                fig.add_scatter(
                    x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False, opacity=alpha,
                    line=dict(color=colour, width=width),
                )  # fmt: skip


def _node_traces(fig, nodes, xy, selected, pins) -> None:
    by_kind: dict[str, list[dict]] = {}
    for n in nodes:
        by_kind.setdefault(n["feature_type"], []).append(n)
    for kind, members in by_kind.items():
        name, colour, symbol = KIND_STYLE.get(kind, (plot_text(kind), "#333", "circle"))
        lines = [3.0 if n["node_id"] == selected else 2.0 if n["node_id"] in pins else 0.5
                 for n in members]  # fmt: skip
        edge_col = ["#d62728" if n["node_id"] == selected else "#111" for n in members]
        fig.add_scatter(
            x=[xy[n["node_id"]][0] for n in members], y=[xy[n["node_id"]][1] for n in members],
            mode="markers", name=name, customdata=[n["node_id"] for n in members],
            text=[_hover(n) for n in members], hovertemplate="%{text}<extra></extra>",
            marker=dict(size=[size(n) for n in members], color=colour, symbol=symbol,
                        line=dict(width=lines, color=edge_col), opacity=0.9),
        )  # fmt: skip


def _hover(n: dict) -> str:
    parts = [plot_text(label(n)), f"id {plot_text(n['node_id'])}"]
    if n.get("influence") is not None and n["feature_type"] not in ALWAYS:
        parts.append(f"influence (cumulative) {n['influence']:.3f}")
    if n.get("activation") is not None:
        parts.append(f"activation {n['activation']:.3f}")
    if n["feature_type"] == "logit":
        parts.append(f"p = {n.get('token_prob', 0.0):.3f}")
    return "<br>".join(parts)


def _supernode_boxes(fig, supernodes: list[list[str]], xy: dict) -> None:
    for sn in supernodes:
        pts = [xy[i] for i in sn[1:] if i in xy]
        if not pts:
            continue
        x0, x1 = min(p[0] for p in pts) - 0.3, max(p[0] for p in pts) + 0.3
        y0, y1 = min(p[1] for p in pts) - 0.35, max(p[1] for p in pts) + 0.35
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color="#444", dash="dot"),
                      fillcolor="rgba(255, 221, 87, 0.18)", layer="below")  # fmt: skip
        fig.add_annotation(x=(x0 + x1) / 2, y=y1, text=f"<b>{plot_text(sn[0])}</b>", showarrow=False,
                           yanchor="bottom", font=dict(size=12))  # fmt: skip


def graph_figure(
    doc: dict,
    *,
    threshold: float = 0.8,
    max_links: int = 300,
    selected: str | None = None,
    pinned: list[str] | None = None,
    supernodes: list[list[str]] | None = None,
    only_pinned: bool = False,
    presenter: bool = False,
) -> go.Figure:
    """The graph in `doc` (circuit-tracer graph JSON), pruned to `threshold`."""
    pins = list(pinned or [])
    shown = visible(doc, threshold, pinned=pins, max_links=max_links, only_pinned=only_pinned)
    xy = positions(shown.nodes)
    fig = go.Figure()
    _edge_traces(fig, shown.links, xy)
    _supernode_boxes(fig, supernodes or [], xy)
    _node_traces(fig, shown.nodes, xy, selected, set(pins))
    meta = doc["metadata"]
    tokens = meta.get("prompt_tokens", [])
    n_rows = max((row(n) for n in doc["nodes"]), default=1)
    component = meta.get("scan") == "attribution-patching"
    ylabels = ["Emb"] + [f"L{i}" for i in range(n_rows - 1)] + ["Logit"]
    fig.update_xaxes(
        tickvals=list(range(len(tokens))), ticktext=[plot_text(show_token(t)) for t in tokens],
        range=[-0.6, len(tokens) - 0.4], title="component" if component else "position",
    )  # fmt: skip
    fig.update_yaxes(tickvals=list(range(n_rows + 1)), ticktext=ylabels, range=[-0.6, n_rows + 0.6])
    title = "Component graph (attribution patching)" if component else "Attribution graph"
    fig.update_layout(
        title=dict(text=title, subtitle=dict(
            text=f"{len(shown.nodes)} nodes, {len(shown.links)} links shown · "
                 f"{plot_text(meta.get('prompt', '').replace(chr(10), ' ⏎ ')[:90])}")),
        height=720, hovermode="closest", clickmode="event+select", dragmode="pan",
        legend=dict(orientation="h", y=-0.12),
    )  # fmt: skip
    return apply(fig, presenter)


def node_by_id(doc: dict, node_id: str | None) -> dict | None:
    return next((n for n in doc["nodes"] if n["node_id"] == node_id), None)


def neighbours(doc: dict, node_id: str, k: int = 8) -> tuple[list[dict], list[dict]]:
    """The `k` strongest links into and out of `node_id`."""
    into = sorted(
        (lk for lk in doc["links"] if lk["target"] == node_id), key=lambda lk: -abs(lk["weight"])
    )
    out = sorted(
        (lk for lk in doc["links"] if lk["source"] == node_id), key=lambda lk: -abs(lk["weight"])
    )
    return into[:k], out[:k]
