"""Parameters and results of the pair analyses (engine/analyses/diff_*.py, issue 14).

A pair analysis compares side A (the request's ``model`` on its ``prompt``) with side B: another
model on the same prompt (``model_b``, kind ``"models"``) or the same model on another prompt
(``prompt_b``, kind ``"prompts"``), position by position (engine/pairs.py checks they align).
Every difference is B minus A; KL is KL(A || B) in nats. Torch-free, like the other schemas.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from engine.schemas.analyses import (
    LENS_MAX_K,
    DLAResult,
    Params,
    Prediction,
    TargetRef,
    TokenOut,
)
from engine.schemas.common import TokenInfo
from engine.schemas.windows import MAX_WIDTH, WindowInfo, WindowParams

PairKind = Literal["models", "prompts"]
TOP_CHANGES = 10  # the largest changes listed (the Diff page's "top changed" lists)


class PairInfo(BaseModel):
    kind: PairKind = Field(description="'models': two models, one prompt; 'prompts': one model")
    model_a: str = Field(description="side A's model name")
    model_b: str = Field(description="side B's model name (A's for two prompts)")
    n_tokens: int = Field(description="positions in each prompt (the same on both sides)")


# --- diff_tokens.py -------------------------------------------------------------------
class DiffTokensParams(Params):
    top_k: int = Field(default=5, ge=1, le=20)
    start: int = Field(default=0, ge=0, description="first position whose top-k is answered")
    width: int = Field(default=48, ge=1, le=MAX_WIDTH, description="positions in the window")


class TokenChange(BaseModel):
    """One position where the next-token distributions differ most."""

    pos: int
    kl: float = Field(description="KL(A || B) of the next-token distributions after pos, nats")
    top_a: Prediction = Field(description="side A's top prediction after pos")
    top_b: Prediction = Field(description="side B's top prediction after pos")
    rank_in_b: int = Field(description="the rank of A's top token in B (1: B's top too)")


class DiffTokensResult(PairInfo, WindowInfo):
    tokens: list[TokenInfo] = Field(description="side A's tokens, every position")
    tokens_b: list[TokenInfo] | None = Field(
        default=None, description="side B's tokens when B is another prompt"
    )
    kl: list[float] = Field(description="[pos]: KL(A || B) after each position, nats")
    top1_changed: list[bool] = Field(description="[pos]: A's and B's top predictions differ")
    top_a: list[list[Prediction]] = Field(description="[pos - start][k]: side A's top-k")
    top_b: list[list[Prediction]] = Field(description="[pos - start][k]: side B's top-k")
    rank_in_b: list[int] = Field(description="[pos - start]: rank of A's top-1 token in B")
    top_changes: list[TokenChange] = Field(
        description=f"the (at most {TOP_CHANGES}) positions of largest KL, largest first"
    )
    mean_kl: float


# --- diff_resid.py --------------------------------------------------------------------
class DiffResidParams(WindowParams):
    pos: int | None = Field(
        default=None, ge=0, description="the position whose difference is read (None: last)"
    )
    top_k: int = Field(default=5, ge=1, le=LENS_MAX_K)


class DiffToken(BaseModel):
    id: int
    text: str
    value: float = Field(description="(resid_B - resid_A) @ W_U[:, id]: no ln_final, no b_U")


class DiffResidResult(PairInfo, WindowInfo):
    tokens: list[TokenInfo] = Field(description="the window's tokens (side A)")
    rows: list[str] = Field(description="resid_pre of every block, then the last resid_post")
    row_layers: list[int] = Field(description="[row]: the block the row belongs to")
    norm: list[list[float]] = Field(description="[row][pos - start]: |resid_B - resid_A|")
    norm_a: list[list[float]] = Field(description="[row][pos - start]: |resid_A|, for scale")
    pos: int = Field(description="the position the lens of the difference reads")
    lens_up: list[list[DiffToken]] = Field(
        description="[row][k]: the tokens (resid_B - resid_A) at pos raises most, through W_U"
    )
    lens_down: list[list[DiffToken]] = Field(description="[row][k]: the tokens it lowers most")


# --- diff_components.py ---------------------------------------------------------------
class DiffComponentsParams(Params):
    pos: int | None = Field(default=None, ge=0)
    target: TargetRef | None = Field(
        default=None, description="the token attributed (None: side A's top prediction at pos)"
    )
    baseline: TargetRef | None = Field(
        default=None, description="if given, attribute logit(target) - logit(baseline)"
    )


class ComponentChange(BaseModel):
    name: str = Field(description="'L1H3' (a head), 'MLP2', 'L2 b_O', 'embed', 'pos_embed'")
    a: float
    b: float
    delta: float = Field(description="b - a")


class HeadScoreDiff(BaseModel):
    name: str
    label: str
    a: list[list[float]] | None = Field(description="[layer][head]; None when undefined on A")
    b: list[list[float]] | None
    delta: list[list[float]] | None = Field(description="b - a; None when either is undefined")


class DiffComponentsResult(PairInfo):
    pos: int
    target: TokenOut
    baseline: TokenOut | None
    metric: str
    a: DLAResult = Field(description="side A's direct logit attribution (engine/analyses/dla.py)")
    b: DLAResult = Field(description="side B's, of the same target")
    heads_delta: list[list[float]] = Field(description="[layer][head]: b - a")
    mlps_delta: list[float] = Field(description="[layer]: b - a")
    total_delta: float
    model_value_delta: float = Field(description="the change of the logit (difference) itself")
    top_changes: list[ComponentChange] = Field(
        description=f"the (at most {TOP_CHANGES}) components whose share changed most"
    )
    head_scores: list[HeadScoreDiff] = Field(
        description="each head score (engine/analyses/head_scores.py) on A and B"
    )
