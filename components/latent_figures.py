"""Figures and HTML of the SAE latents view: data in (the engine's results), figure/HTML out.

``token_latent_figure`` is the token x top-latents heatmap, ``colored_tokens_html`` shades a
prompt by one latent, ``histogram_figure`` and ``logit_effect_figure`` belong to a latent's
panel, ``examples_html`` its top-activating examples; ``panel_parts`` gathers a panel's pieces
from one ``latent_detail`` result (the Graph view reuses it for latents it shows).
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from components.heatmaps import add_click_grid, token_ticks
from components.safe import h, md, plot_text
from components.theme import SEQUENTIAL, apply, show_token
from engine.schemas.saes import Example, Histogram, LatentDetailResult, SaeLatentsResult

POS, NEG = "#2166ac", "#b2182b"
SHADE = "106,81,163"  # the purple of activation shading


def latent_name(index: int, label: str | None) -> str:
    return f"#{index} {label}" if label else f"#{index}"


def token_latent_figure(
    result: SaeLatentsResult, labels: dict[int, str] | None = None
) -> go.Figure:
    """Rows: the latents that are among some token's top-k; columns: tokens; cells: activation
    (blank where the latent is not in that token's top-k, and at BOS, whose activations are
    outliers the SAE was not trained on)."""
    labels = labels or {}
    tokens = [t.text for t in result.tokens]
    special = {t.pos for t in result.tokens if t.start is None}  # BOS: an outlier
    best: dict[int, float] = {}
    for pos, row in enumerate(result.top):
        for r in row:
            if pos not in special:
                best[r.index] = max(best.get(r.index, 0.0), r.act)
    order = sorted(best, key=lambda i: -best[i])[:30]
    z = [[None] * len(tokens) for _ in order]
    where = {i: k for k, i in enumerate(order)}
    for pos, row in enumerate(result.top):
        for r in row:
            if r.index in where and pos not in special:
                z[where[r.index]][pos] = r.act
    names = [latent_name(i, labels.get(i)) for i in order]
    fig = go.Figure(go.Heatmap(z=z, colorscale=SEQUENTIAL, colorbar=dict(title="act"),
                               hoverongaps=False, zmin=0))  # fmt: skip
    hover = [
        [f"{plot_text(names[y])}<br>pos {x} {plot_text(show_token(tokens[x]))}: "
         + ("–" if z[y][x] is None else f"{z[y][x]:.3f}") for x in range(len(tokens))]
        for y in range(len(order))
    ]  # fmt: skip
    if order:
        add_click_grid(fig, list(range(len(tokens))), list(range(len(order))), hover)
    fig.update_xaxes(**token_ticks(tokens), tickangle=-45)
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(order))),
                     ticktext=[plot_text(n[:48]) for n in names])  # fmt: skip
    sae = result.sae
    fig.update_layout(
        title=dict(text=f"Top {len(result.top[0]) if result.top else 0} latents per token",
                   subtitle=dict(text=f"SAE at {plot_text(sae.hook_name)} ({sae.d_sae} latents)")),
        height=max(320, 22 * len(order) + 160), meta={"latents": order},
    )  # fmt: skip
    return apply(fig)


def colored_tokens_html(
    tokens: list[str], acts: list[float], *, selected: int | None = None
) -> str:
    """The prompt with each token shaded by one latent's activation (hover: the value)."""
    top = max([a for a in acts if a > 0], default=1.0)
    spans = []
    for i, (tok, act) in enumerate(zip(tokens, acts, strict=True)):
        alpha = max(0.0, act / top)
        border = "outline: 2px solid #d62728;" if i == selected else ""
        spans.append(
            f'<span title="pos {i}: {act:.3f}" style="background: rgba({SHADE},{alpha:.2f}); '
            f'{border} padding: 1px 0; white-space: pre">{html.escape(tok)}</span>'
        )
    return "<div style='line-height: 1.9; font-size: 1.05em'>" + "".join(spans) + "</div>"


def strongest_table(result: SaeLatentsResult) -> pd.DataFrame:
    tokens = [t.text for t in result.tokens]
    return pd.DataFrame(
        [
            {"latent": s.index, "label": s.label, "max act": round(s.max_act, 3),
             "at": f"{s.max_pos}:{show_token(tokens[s.max_pos])}",
             "tokens firing": s.n_active,
             "density": None if s.frequency is None else round(s.frequency, 4)}
            for s in result.strongest
        ]
    )  # fmt: skip


def examples_html(examples: list[Example], limit: int = 10) -> str:
    rows = []
    for ex in examples[:limit]:
        top = max(ex.acts) or 1.0
        spans = []
        for i, (tok, act) in enumerate(zip(ex.tokens, ex.acts, strict=True)):
            weight = "700" if i == ex.max_pos else "400"
            spans.append(
                f'<span title="{act:.3f}" style="background: rgba({SHADE},{max(0.0, act / top):.2f}); '
                f'font-weight: {weight}; white-space: pre">{html.escape(tok)}</span>'
            )
        rows.append(
            f"<div style='margin: 3px 0; padding: 2px 6px; border-left: 3px solid #ccc'>"
            f"<span style='color:#666; font-size:0.8em'>{top:.2f}&nbsp;</span>{''.join(spans)}</div>"
        )
    return "<div style='font-size: 0.9em; line-height: 1.6'>" + "".join(rows) + "</div>"


def histogram_figure(hist: Histogram) -> go.Figure:
    edges = hist.edges
    mids = [(a * b) ** 0.5 for a, b in zip(edges, edges[1:], strict=False)]
    keep = [i for i, c in enumerate(hist.counts) if c]
    lo, hi = (min(keep), max(keep) + 1) if keep else (0, len(mids))
    fig = go.Figure(go.Bar(x=[f"{mids[i]:.3g}" for i in range(lo, hi)],
                           y=hist.counts[lo:hi], marker_color=f"rgb({SHADE})"))  # fmt: skip
    fig.update_layout(
        title=dict(text="Activation histogram", subtitle=dict(text=f"over {hist.over}")),
        xaxis_title="activation (log-spaced bins)", yaxis_title="count", height=300,
    )  # fmt: skip
    return apply(fig)


def logit_effect_figure(detail: LatentDetailResult) -> go.Figure:
    """Top and bottom tokens of W_dec[i] @ W_U as one bar chart, most positive on top."""
    top = list(zip(detail.top_logits, detail.top_values, strict=True))
    bottom = list(zip(detail.bottom_logits, detail.bottom_values, strict=True))
    rows = top + bottom[::-1]
    names = [plot_text(show_token(t.text)) for t, _ in rows]
    values = [v for _, v in rows]
    fig = go.Figure(go.Bar(x=values, y=list(range(len(rows))), orientation="h",
                           marker_color=[POS if v >= 0 else NEG for v in values],
                           hovertext=names, hovertemplate="%{hovertext}: %{x:.3f}<extra></extra>"))  # fmt: skip
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(rows))), ticktext=names,
                     autorange="reversed")  # fmt: skip
    fig.update_layout(
        title=dict(text="Logit effect", subtitle=dict(text="W_dec[i] · W_U: top and bottom tokens")),
        height=max(300, 20 * len(rows) + 120), xaxis_title="direct effect on the logit",
    )  # fmt: skip
    return apply(fig)


def panel_parts(detail: LatentDetailResult) -> dict:
    """Everything a latent panel shows, from one ``latent_detail`` result; ``*_html`` and
    ``*_md`` are escaped (components/safe.py) for HTML and markdown."""
    where = (
        f"reads {detail.reads}" if detail.reads == detail.writes
        else f"reads {detail.reads}, writes {detail.writes}"
    )  # fmt: skip
    facts = [where, f"decoder norm {detail.decoder_norm:.3g}"]
    if detail.max_act is not None:
        facts.append(f"max act {detail.max_act:.3g}")
    if detail.frequency is not None:
        facts.append(f"fires on {100 * detail.frequency:.2f}% of tokens")
    title, label = f"{detail.key} latent #{detail.index}", detail.label or "(no label)"
    return {
        "title": title,
        "title_md": md(title),
        "label": label,
        "label_html": f"<b>{h(label)}</b> <span style='color:#888'>({h(detail.label_origin)} "
        "label)</span>",
        "label_origin": detail.label_origin,
        "facts": " · ".join(facts),
        "facts_md": md(" · ".join(facts)),
        "examples_html": examples_html(detail.examples),
        "examples_over": detail.examples_over,
        "examples_over_html": "<b>Top-activating examples</b> <span style='color:#888'>"
        f"({h(detail.examples_over)})</span>",
        "logit_figure": logit_effect_figure(detail),
        "histogram_figure": histogram_figure(detail.histogram) if detail.histogram else None,
        "neuronpedia_url": detail.neuronpedia.url if detail.neuronpedia else None,
    }
