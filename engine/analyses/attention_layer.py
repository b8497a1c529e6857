"""Every head's attention pattern in one layer (what circuitsvis ``attention_heads`` shows)."""

from __future__ import annotations

from engine.analyses import Analysis, register
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.views import AttentionLayerParams, AttentionLayerResult
from engine.validation import check_index


def check(lm: LoadedModel, params: AttentionLayerParams) -> None:
    check_index("layer", params.layer, lm.n_layers)


def attention_layer(run: PromptRun, params: AttentionLayerParams) -> AttentionLayerResult:
    patterns = run.cache["pattern", params.layer]  # [head, query, key]
    return AttentionLayerResult(
        layer=params.layer,
        tokens=[t.text for t in run.token_infos],
        patterns=patterns.float().tolist(),
    )


register(
    Analysis(
        name="attention_layer",
        version=1,
        params=AttentionLayerParams,
        result=AttentionLayerResult,
        fn=attention_layer,
        check=check,
        description="all heads' attention patterns of one layer [head][query_pos][key_pos]",
    )
)
