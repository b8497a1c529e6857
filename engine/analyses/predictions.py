"""Next-token top-k predictions and per-token loss for a prompt."""

from __future__ import annotations

from engine.analyses import Analysis, register
from engine.run import PromptRun
from engine.schemas.analyses import Prediction, PredictionsParams, PredictionsResult


def predictions(run: PromptRun, params: PredictionsParams) -> PredictionsResult:
    logits = run.logits  # [pos, vocab]
    logprobs = logits.log_softmax(-1)
    top_lp, top_ids = logprobs.topk(min(params.top_k, logits.shape[-1]), dim=-1)
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
    ids = run.token_ids
    nll = -logprobs[:-1].gather(-1, logprobs.new_tensor(ids[1:]).long()[:, None])[:, 0]
    loss: list[float | None] = [None] + [float(x) for x in nll]
    mean = float(nll.mean()) if len(ids) > 1 else None
    return PredictionsResult(tokens=run.token_infos, top=top, loss=loss, mean_loss=mean)


register(
    Analysis(
        name="predictions",
        version=1,
        params=PredictionsParams,
        result=PredictionsResult,
        fn=predictions,
        description="top-k next-token predictions at each position and per-token loss",
    )
)
