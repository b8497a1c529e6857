"""Next-token top-k predictions and per-token loss for a prompt."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from engine.analyses.base import Analysis
from engine.run import PromptRun
from engine.schemas.analyses import Prediction, PredictionsParams, PredictionsResult
from engine.schemas.windows import clamp_window


def next_token(
    logits: Float[Tensor, "pos vocab"], k: int, start: int = 0, stop: int | None = None
) -> tuple[Int[Tensor, "win k"], Float[Tensor, "win k"]]:
    """(ids, log-probabilities) of the `k` likeliest next tokens after positions `start` to
    `stop`."""
    top = logits[start:stop].log_softmax(-1).topk(min(k, logits.shape[-1]), dim=-1)
    return top.indices, top.values


def token_loss(logits: Float[Tensor, "pos vocab"], ids: list[int]) -> Float[Tensor, " pos_1"]:
    """The loss of every token given the ones before it (-log p, from the second token on),
    as a log-sum-exp: no [pos, vocab] log-softmax is made for it."""
    target = torch.tensor(ids[1:], device=logits.device, dtype=torch.long)
    return logits[:-1].logsumexp(-1) - logits[:-1].gather(-1, target[:, None])[:, 0]


def top_predictions(
    logits: Float[Tensor, "pos vocab"], tokenizer, k: int, start: int = 0, stop: int | None = None
) -> list[list[Prediction]]:
    """The `k` likeliest next tokens after positions `start` to `stop`: [pos - start][k]."""
    top_ids, top_lp = next_token(logits, k, start, stop)
    window = logits[start:stop]  # [window, vocab]
    texts = tokenizer.convert_ids_to_tokens(top_ids.flatten().tolist())
    # None: an id past the tokenizer (a padded vocabulary, e.g. Pythia's), decoded as ""
    decoded = [tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in texts]
    k = top_ids.shape[1]
    top_logits = window.gather(-1, top_ids)
    return [
        [
            Prediction(
                id=int(top_ids[p, j]),
                text=decoded[p * k + j],
                prob=float(top_lp[p, j].exp()),
                logit=float(top_logits[p, j]),
            )
            for j in range(k)
        ]
        for p in range(window.shape[0])
    ]


def predictions(run: PromptRun, params: PredictionsParams) -> PredictionsResult:
    """Every token's loss (the token strip colours them all), and the top-k after the positions
    of the window only (what the figure draws: 20 of 1000 positions is 1/50 of the answer)."""
    n = len(run.token_ids)
    start, stop = (0, n) if params.width is None else clamp_window(params.start, params.width, n)
    top = top_predictions(run.logits, run.lm.model.tokenizer, params.top_k, start, stop)
    if "token_loss" not in run.memo:  # the same for every window: kept with the prompt's run
        run.memo["token_loss"] = token_loss(run.logits, run.token_ids)
    nll = run.memo["token_loss"]
    loss: list[float | None] = [None] + [float(x) for x in nll]
    mean = float(nll.mean()) if len(run.token_ids) > 1 else None
    return PredictionsResult(
        tokens=run.token_infos, top=top, start=start, stop=stop, loss=loss, mean_loss=mean
    )


PREDICTIONS = Analysis(
    name="predictions",
    version=2,
    params=PredictionsParams,
    result=PredictionsResult,
    fn=predictions,
    feature="predictions",
    description="top-k next-token predictions at each position and per-token loss",
)
