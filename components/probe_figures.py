"""Figures of the Probes view (pure: a probe sweep's result in, a figure or sentence out).

- ``layer_curve``: held-out accuracy and AUROC per hook point of the logistic probe and the
  difference of means, next to the shuffled-label probe and the best single SAE latent;
- ``position_heatmap``: hook point x position (the "every token" rule), one scorer's metric;
- ``verdict``: which scorer wins, in words (the probe against the best SAE latent, where one is
  attached, and against the shuffled-label baseline).
"""

from __future__ import annotations

import re

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.safe import plot_text
from components.theme import SEQUENTIAL, apply, show_token
from engine.schemas.probes import HookResult, ProbeSweepResult

SCORERS = {  # key in the result -> (legend name, colour, dash)
    "logistic_probe": ("logistic probe", "#1f77b4", "solid"),
    "diff_of_means": ("difference of means", "#2ca02c", "solid"),
    "sae_latent": ("best single SAE latent", "#d62728", "dot"),
    "shuffled": ("probe on shuffled labels", "#777777", "dash"),
}
METRICS = {"accuracy": "held-out accuracy", "auroc": "held-out AUROC"}


def hook_label(hook: str) -> str:
    """``blocks.3.hook_resid_pre`` -> ``L3 resid_pre`` (other hooks as they are)."""
    m = re.fullmatch(r"blocks\.(\d+)\.hook_(.+)", hook)
    return f"L{m.group(1)} {m.group(2)}" if m else hook


def rows_at(result: ProbeSweepResult, position: int | None = None) -> list[HookResult]:
    """The result's rows at one position (the "every" rule) or all of them (otherwise), in
    hook order."""
    if result.positions:
        position = result.positions[-1] if position is None else position
        return [r for r in result.results if r.position == position]
    return list(result.results)


def score(r: HookResult, key: str, metric: str) -> float | None:
    """Scorer `key`'s `metric` at a hook point (None where it has none: no SAE there)."""
    s = getattr(r, key)
    return None if s is None else getattr(s, metric)


def layer_curve(result: ProbeSweepResult, *, position: int | None = None) -> go.Figure:
    """Two panels, held-out accuracy and AUROC, per hook point; one line per scorer."""
    rows = rows_at(result, position)
    x = [hook_label(r.hook) for r in rows]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1)
    for key, (name, color, dash) in SCORERS.items():
        for col, metric in enumerate(METRICS, start=1):
            y = [score(r, key, metric) for r in rows]
            if all(v is None for v in y):
                continue
            hover = [_hover(r, key, metric) for r in rows]
            fig.add_scatter(
                x=x, y=y, name=name, legendgroup=key, showlegend=col == 1, row=1, col=col,
                mode="lines+markers" if key != "sae_latent" else "markers",
                line=dict(color=color, dash=dash), marker=dict(size=9 if key == "sae_latent" else 7),
                hovertext=hover, hoverinfo="text",
            )  # fmt: skip
    fig.update_yaxes(range=[-0.03, 1.03], dtick=0.25)
    for col, title in enumerate(METRICS.values(), start=1):
        fig.update_yaxes(title=title, row=1, col=col)
    fig.add_hline(y=0.5, line=dict(color="#bbb", width=1))
    where = "" if position is None else f" at position {position}"
    fig.update_layout(
        title=dict(text=f"Probe sweep: {plot_text(subject(result))}{where}",
                   subtitle=dict(text=plot_text(setup_line(result)))),
        height=430, legend=dict(orientation="h", y=-0.22, x=0),
    )  # fmt: skip
    return apply(fig)


def _hover(r: HookResult, key: str, metric: str) -> str:
    s = getattr(r, key)
    if not s:
        return ""
    extra = f" (latent {s.index}{'' if s.sign > 0 else ', negated'})" if key == "sae_latent" else ""
    return f"{r.hook}: {SCORERS[key][0]}{extra}<br>{METRICS[metric]} {getattr(s, metric):.3f}"


def subject(result: ProbeSweepResult) -> str:
    return f"{result.n_positive} vs {result.n_negative} prompts"


def setup_line(result: ProbeSweepResult) -> str:
    rule = {"last": "last token", "every": "every token", "match": "last token matching"}[
        result.position
    ]
    if result.position == "match":
        rule += f" /{result.pattern}/"
    dropped = f", {result.n_dropped} without a match dropped" if result.n_dropped else ""
    n_rows = result.n_train + result.n_test
    if result.n_distinct is not None and result.n_distinct < n_rows:
        dropped += (f", {result.n_distinct} distinct texts (repeats kept on one side of the "
                    "split)")  # fmt: skip
    return (
        f"{rule} · {result.n_train} train / {result.n_test} held out{dropped} · "
        "baselines: shuffled labels, best single SAE latent (chosen on the train split)"
    )


def position_heatmap(
    result: ProbeSweepResult, *, scorer: str = "logistic_probe", metric: str = "auroc"
) -> go.Figure:
    """Hook point x position of one scorer's held-out metric (the "every token" rule)."""
    positions, hooks = result.positions or [], result.hooks
    cell = {(r.hook, r.position): r for r in result.results}
    z = [[score(cell[h, p], scorer, metric) for p in positions] for h in hooks]
    toks = result.position_tokens or [""] * len(positions)
    x = [f"{p} {plot_text(show_token(t))}" for p, t in zip(positions, toks, strict=False)]
    y = [hook_label(h) for h in hooks]
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=y, zmin=0, zmax=1, colorscale=SEQUENTIAL, colorbar=dict(title=metric, thickness=14),
        text=[[("" if v is None else f"{v:.2f}") for v in row] for row in z],
        texttemplate="%{text}" if len(positions) <= 24 else "",
        hovertemplate="%{y} at %{x}: %{z:.3f}<extra></extra>",
    ))  # fmt: skip
    fig.update_yaxes(autorange="reversed", title="hook point")
    fig.update_xaxes(title="position (the first prompt's token)", tickangle=-45)
    fig.update_layout(
        title=dict(text=f"{SCORERS[scorer][0].capitalize()}: {METRICS[metric]} per hook point and position",
                   subtitle=dict(text=plot_text(setup_line(result)))),
        height=220 + 34 * len(hooks),
    )  # fmt: skip
    return apply(fig)


def verdict(result: ProbeSweepResult, position: int | None = None) -> list[str]:
    """Sentences saying which scorer wins (by held-out AUROC, then accuracy), plainly."""
    rows = rows_at(result, position)
    out = []
    best = max(rows, key=lambda r: (r.logistic_probe.auroc, r.logistic_probe.accuracy))
    lp = best.logistic_probe
    out.append(f"Best probe: {best.hook} — held-out accuracy {lp.accuracy:.2f}, "
               f"AUROC {lp.auroc:.2f}.")  # fmt: skip
    with_sae = [r for r in rows if r.sae_latent]
    if with_sae:
        w = sum(r.logistic_probe.auroc > r.sae_latent.auroc for r in with_sae)
        t = sum(r.logistic_probe.auroc == r.sae_latent.auroc for r in with_sae)
        lose = len(with_sae) - w - t
        who = (
            "the logistic probe wins"
            if w > lose
            else "the best SAE latent wins"
            if lose > w
            else "neither wins"
        )
        out.append(
            f"Probe vs best single SAE latent (at the {len(with_sae)} hook point(s) with an SAE): "
            f"{who} — probe higher AUROC at {w}, tied at {t}, latent higher at {lose}."
        )
    else:
        out.append("No SAE reads any of these hook points: no SAE-latent baseline.")
    gap = [r.logistic_probe.accuracy - r.shuffled.accuracy for r in rows]
    if gap:
        out.append(
            f"Against shuffled labels the probe is {max(gap):+.2f} accuracy at best, "
            f"{sum(gap) / len(gap):+.2f} on average: "
            + ("it reads the labels, not noise." if max(gap) >= 0.2 else "little above noise here.")
        )
    return out


def table_rows(result: ProbeSweepResult, position: int | None = None) -> list[dict]:
    """One row per hook point: each scorer's held-out accuracy / AUROC (for a data table)."""
    out = []
    for r in rows_at(result, position):
        row = {"hook": r.hook}
        for key, (name, _, _) in SCORERS.items():
            s = getattr(r, key)
            row[f"{name} acc"] = None if s is None else round(s.accuracy, 3)
            row[f"{name} AUROC"] = None if s is None else round(s.auroc, 3)
        if r.sae_latent:
            row["latent"] = r.sae_latent.index
        out.append(row)
    return out
