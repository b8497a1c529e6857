"""Logit lens: each residual stream read through the final layer norm and the unembedding.

A *row* is one residual stream per block at the chosen stage (``resid_pre`` / ``resid_mid`` /
``resid_post``), from the input to the output; for ``resid_pre`` and ``resid_mid`` an
``output`` row (the last ``resid_post``, i.e. what the model predicts) closes the list.
``logit_lens`` gives the top tokens of every (row, pos); ``logit_lens_targets`` follows chosen
tokens' probability and rank down the rows at one position.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from engine import targets
from engine.analyses import Analysis, register
from engine.analyses.lens_topk import lens_window, soft_cap
from engine.errors import EngineError
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.analyses import Prediction
from engine.schemas.views import (
    LENS_MAX_K,
    LensStage,
    LensTargetsParams,
    LensTargetsResult,
    LensTrace,
    LogitLensParams,
    LogitLensResult,
)
from engine.schemas.windows import clamp_window

SHORT = {LensStage.resid_pre: "pre", LensStage.resid_mid: "mid", LensStage.resid_post: "post"}


def check_stage(lm: LoadedModel, stage: LensStage) -> None:
    if stage == LensStage.resid_mid and lm.model.cfg.parallel_attn_mlp:
        raise EngineError(
            422,
            "no_resid_mid",
            "This model runs attention and MLP in parallel, so it has no resid_mid: "
            "choose resid_pre or resid_post.",
        )


def rows_of(run: PromptRun, stage: LensStage) -> tuple[list[str], list[int], list[str]]:
    """(labels, blocks, hook names) of the residual streams the lens reads, input first."""
    n = run.lm.n_layers
    labels = [f"L{layer} {SHORT[stage]}" for layer in range(n)]
    blocks = list(range(n))
    hooks = [f"blocks.{layer}.hook_{stage.value}" for layer in range(n)]
    if stage != LensStage.resid_post:
        labels.append("output")
        blocks.append(n - 1)
        hooks.append(f"blocks.{n - 1}.hook_resid_post")
    return labels, blocks, hooks


def readout(run: PromptRun, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... vocab"]:
    """Logits of `resid` through the final layer norm and the unembedding (bias included)."""
    model = run.lm.model
    with torch.inference_mode():
        return soft_cap(model, model.unembed(model.ln_final(resid.to(model.cfg.dtype))).float())


def decode_all(run: PromptRun, ids: list[int]) -> dict[int, str]:
    return {i: targets.token_text(run.lm, i) for i in set(ids)}


def _cell(
    text: dict[int, str], ids: list[int], probs: list[float], logits: list[float]
) -> list[Prediction]:
    return [
        Prediction(id=t, text=text[t], prob=p, logit=lo)
        for t, p, lo in zip(ids, probs, logits, strict=True)
    ]


def logit_lens(run: PromptRun, params: LogitLensParams) -> LogitLensResult:
    """Top tokens of every row at the window's positions (lens_topk.py: chunked over the
    vocabulary, memoised per prompt in blocks of positions)."""
    labels, blocks, hooks = rows_of(run, params.stage)
    n = len(run.token_ids)
    start, stop = clamp_window(params.start, params.width, n)
    ids, probs, logits = lens_window(run, hooks, start, stop, LENS_MAX_K)
    k = params.top_k
    i, p, lg = ids[..., :k].tolist(), probs[..., :k].tolist(), logits[..., :k].tolist()
    text = decode_all(run, [x for r in i for cell in r for x in cell])
    top = [
        [_cell(text, *cell) for cell in zip(i[r], p[r], lg[r], strict=True)]
        for r in range(len(hooks))
    ]
    return LogitLensResult(
        stage=params.stage,
        rows=labels,
        row_layers=blocks,
        n_tokens=n,
        start=start,
        stop=stop,
        tokens=run.token_infos[start:stop],
        top=top,
    )


def check(lm: LoadedModel, params: LogitLensParams) -> None:
    check_stage(lm, params.stage)


def check_targets(lm: LoadedModel, params: LensTargetsParams) -> None:
    check_stage(lm, params.stage)
    targets.check(lm, *params.targets)


@torch.inference_mode()
def lens_targets(run: PromptRun, params: LensTargetsParams) -> LensTargetsResult:
    pos = run.position(params.pos)
    labels, blocks, hooks = rows_of(run, params.stage)
    logits = readout(run, torch.stack([run.cache[h][pos] for h in hooks]))  # [row, vocab]
    logprobs = logits.log_softmax(-1)
    ids = [targets.resolve(run.lm, t) for t in params.targets]
    if not ids:
        ids = [int(run.logits[pos].argmax())]
    traces = []
    for t in dict.fromkeys(ids):
        value = logits[:, t]
        traces.append(
            LensTrace(
                token=targets.token_out(run.lm, t),
                prob=logprobs[:, t].exp().tolist(),
                logit=value.tolist(),
                rank=((logits > value[:, None]).sum(-1) + 1).tolist(),
            )
        )
    return LensTargetsResult(
        stage=params.stage, rows=labels, row_layers=blocks, pos=pos, traces=traces
    )


register(
    Analysis(
        name="logit_lens",
        version=2,
        params=LogitLensParams,
        result=LogitLensResult,
        fn=logit_lens,
        check=check,
        description="top tokens of every residual stream [row][pos - start][k] in a position "
        "window, through ln_final+unembed",
    )
)
register(
    Analysis(
        name="logit_lens_targets",
        version=2,
        params=LensTargetsParams,
        result=LensTargetsResult,
        fn=lens_targets,
        check=check_targets,
        description="chosen tokens' lens probability, logit and rank at each row, at one pos",
    )
)
