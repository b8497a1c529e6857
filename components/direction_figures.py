"""Figures of acting on a saved direction: the measurement sweep (behaviour rate and harmless KL
against the coefficient), and its bundle, whose snippet runs the engine's own functions
(``engine/interventions.py``: the edits and their hooks; ``engine/direction_sweep.py``: the
greedy continuations, the classifier and the KL) on the saved unit direction it carries."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.bundles import Array, BundleSpec
from components.engine_source import engine_source
from components.theme import apply
from engine.schemas.directions import Direction, SweepResult

ENGINE = engine_source(
    (
        "engine.interventions",
        ("add", "ablate", "cap", "span", "ablate_span", "Applied", "whole_ablation", "hooks"),
    ),
    ("engine.direction_sweep", ("greedy", "mean_kl", "prompt_kl", "classify")),
)


def value_name(mode: str) -> str:
    return {"add": "coefficient", "ablate": "share of the projection removed",
            "cap": "upper end of the cap"}.get(mode, "value")  # fmt: skip


def sweep_figure(result: SweepResult, behaviour: str = "behaviour") -> go.Figure:
    """Rate of the behaviour (left axis) and KL on harmless prompts (right axis) per value; the
    rate without the intervention as a dotted line."""
    rows = result.rows
    xs = [r.value for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=xs, y=[r.rate for r in rows], mode="lines+markers",
                             name=f"{behaviour} rate"), secondary_y=False)  # fmt: skip
    fig.add_trace(go.Scatter(x=xs, y=[r.kl for r in rows], mode="lines+markers",
                             name="KL on harmless prompts", line=dict(dash="dash")),
                  secondary_y=True)  # fmt: skip
    fig.add_hline(y=result.baseline_rate, line_dash="dot", line_color="#888",
                  annotation_text="without", secondary_y=False)  # fmt: skip
    fig.update_yaxes(title_text=f"{behaviour} rate", range=[-0.05, 1.05], secondary_y=False)
    fig.update_yaxes(title_text="KL (nats)", rangemode="tozero", secondary_y=True)
    fig.update_layout(
        title=dict(text=f"{result.mode.capitalize()} {result.direction}: "
                        f"{behaviour} rate and harmless KL",
                   subtitle=dict(text="rate: greedy continuations of the held-out prompts; KL"
                                 "(clean ‖ intervened) of next-token distributions at the "
                                 "harmless prompts' positions")),
        xaxis_title=value_name(result.mode), height=380,
        legend=dict(orientation="h", y=-0.25),
    )  # fmt: skip
    return apply(fig)


_CODE = """
from types import SimpleNamespace

DIRECTION = torch.tensor({vector!r})  # the saved unit direction {name!r}, read at {hook}
MODE, LAYERS, VALUES, LO = {mode!r}, {layers!r}, {values!r}, {lo!r}
PROMPTS = {prompts!r}
HARMLESS = {harmless!r}
CLASSIFIER = SimpleNamespace(keywords={keywords!r}, threshold=0.0)
MAX_NEW_TOKENS, CHAT = {max_new}, {chat!r}
device, dtype = model.cfg.device, model.cfg.dtype


def encode(texts):
    if CHAT:  # one user turn in the tokenizer's chat template (it holds the BOS)
        return [model.tokenizer.encode(model.tokenizer.apply_chat_template(
            [{{"role": "user", "content": t}}], tokenize=False, add_generation_prompt=True))
            for t in texts]
    return [model.to_tokens(t)[0].tolist() for t in texts]


r = DIRECTION.float()
if MODE != "add" and model.cfg.normalization_type in ("LN", "LNPre"):
    r = r - r.mean()  # the residual stream of a centred LayerNorm model has no mean
r = r / r.norm()
at = {at!r}  # the hook points it acts at
prompts, harmless = encode(PROMPTS), encode(HARMLESS)
eos = model.tokenizer.eos_token_id


def rate(hook_list):
    texts = [model.tokenizer.decode(g) for g in greedy(model, prompts, hook_list, MAX_NEW_TOKENS, eos)]
    hits = classify(texts, CLASSIFIER)
    return sum(hits) / len(hits)


rates, kls = [], []
for value in VALUES:
    coeff, lo, hi = (1.0, min(LO, value) if LO is not None else None, value) if MODE == "cap" else (value, None, None)
    applied = [Applied({name!r}, MODE, r, at, coeff, lo, hi)]
    hook_list = hooks(applied, device, dtype)
    rates.append(rate(hook_list))
    kls.append(prompt_kl(model, harmless, hook_list))
data = {{"rate": rates, "kl": kls, "baseline_rate": [rate([])]}}
"""


def sweep_bundle(params: dict, result: SweepResult, direction: Direction) -> BundleSpec | None:
    """The sweep's data and a snippet recomputing it; None for what the snippet does not
    rebuild (a gate, a probe classifier)."""
    it, c = params["intervention"], params["classifier"]
    if it.get("gate") or c.get("probe"):
        return None
    rows = result.rows
    code = ENGINE + _CODE.format(
        vector=[round(x, 8) for x in direction.vector], name=direction.name,
        hook=direction.hook, mode=it["mode"], layers=it.get("layers"),
        values=[r.value for r in rows], lo=it.get("lo"), prompts=params["prompts"],
        harmless=params["harmless"], keywords=c["keywords"],
        max_new=params.get("max_new_tokens", 10), chat=bool(params.get("chat")),
        at=result.hook_points,
    )  # fmt: skip
    return BundleSpec(
        data={
            "rate": Array(("value",), [r.rate for r in rows]),
            "kl": Array(("value",), [r.kl for r in rows]),
            "baseline_rate": Array(("none",), [result.baseline_rate]),
        },
        code=code,
        labels={"value": [f"{r.value:g}" for r in rows]},
    )
