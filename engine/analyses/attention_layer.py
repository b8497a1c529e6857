"""Every head's attention pattern in one layer (what circuitsvis ``AttentionHeads`` shows),
in a position window: the ``[start, stop)`` block of each head, float16 (see attention.py)."""

from __future__ import annotations

from engine.analyses import Analysis, register
from engine.analyses.attention import window_block
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.arrays import pack
from engine.schemas.views import AttentionLayerParams, AttentionLayerResult
from engine.schemas.windows import clamp_window
from engine.validation import check_index


def check(lm: LoadedModel, params: AttentionLayerParams) -> None:
    check_index("layer", params.layer, lm.n_layers)


def attention_layer(run: PromptRun, params: AttentionLayerParams) -> AttentionLayerResult:
    patterns = run.cache["pattern", params.layer]  # [head, query, key]
    start, stop = clamp_window(params.start, params.width, len(run.token_ids))
    block, before = window_block(patterns, start, stop)
    return AttentionLayerResult(
        layer=params.layer,
        n_tokens=len(run.token_ids),
        start=start,
        stop=stop,
        tokens=[t.text for t in run.token_infos[start:stop]],
        patterns=pack(block),
        before=pack(before),
    )


register(
    Analysis(
        name="attention_layer",
        version=2,
        params=AttentionLayerParams,
        result=AttentionLayerResult,
        fn=attention_layer,
        check=check,
        description="all heads' attention patterns of one layer in a position window "
        "[head][query][key] (float16)",
    )
)
