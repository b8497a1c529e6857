"""One head's attention pattern on a prompt."""

from __future__ import annotations

from engine.analyses import Analysis, register
from engine.loading import LoadedModel
from engine.run import PromptRun
from engine.schemas.analyses import AttentionParams, AttentionResult
from engine.validation import check_index


def check(lm: LoadedModel, params: AttentionParams) -> None:
    check_index("layer", params.layer, lm.n_layers)
    check_index("head", params.head, lm.n_heads)


def attention_pattern(run: PromptRun, params: AttentionParams) -> AttentionResult:
    pattern = run.cache["pattern", params.layer][params.head]  # [query, key]
    return AttentionResult(
        layer=params.layer,
        head=params.head,
        tokens=[t.text for t in run.token_infos],
        pattern=pattern.float().tolist(),
    )


register(
    Analysis(
        name="attention_pattern",
        version=1,
        params=AttentionParams,
        result=AttentionResult,
        fn=attention_pattern,
        check=check,
        description="one head's attention pattern [query_pos][key_pos]",
    )
)
