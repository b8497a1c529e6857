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
    logits: Float[Tensor, "pos vocab"], ids: list[int], k: int
) -> tuple[Int[Tensor, "pos k"], Float[Tensor, "pos k"], Float[Tensor, " pos_1"]]:
    """(ids, log-probabilities) of the `k` likeliest next tokens after each position, and
    the loss of each token given the ones before it (-log p, from the second token on)."""
    logprobs = logits.log_softmax(-1)
    top_lp, top_ids = logprobs.topk(min(k, logits.shape[-1]), dim=-1)
    target = torch.tensor(ids[1:], device=logits.device, dtype=torch.long)
    nll = -logprobs[:-1].gather(-1, target[:, None])[:, 0]
    return top_ids, top_lp, nll


def predictions(run: PromptRun, params: PredictionsParams) -> PredictionsResult:
    """Every token's loss (the token strip colours them all), and the top-k after the positions
    of the window only (what the figure draws: 20 of 1000 positions is 1/50 of the answer)."""
    n = len(run.token_ids)
    start, stop = (0, n) if params.width is None else clamp_window(params.start, params.width, n)
    logits = run.logits  # [pos, vocab]
    top_ids, top_lp, nll = next_token(logits, run.token_ids, params.top_k)
    top_ids, top_lp = top_ids[start:stop], top_lp[start:stop]
    logits = logits[start:stop]
    tokenizer = run.lm.model.tokenizer
    texts = tokenizer.convert_ids_to_tokens(top_ids.flatten().tolist())
    # None: an id past the tokenizer (a padded vocabulary, e.g. Pythia's), decoded as ""
    decoded = [tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in texts]
    k = top_ids.shape[1]
    top_logits = logits.gather(-1, top_ids)
    top = [
        [
            Prediction(
                id=int(top_ids[p, j]),
                text=decoded[p * k + j],
                prob=float(top_lp[p, j].exp()),
                logit=float(top_logits[p, j]),
            )
            for j in range(k)
        ]
        for p in range(logits.shape[0])
    ]
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
