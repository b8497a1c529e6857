"""Parameters and results of the latent diffs and the activation-difference lens (issue 14).

Side A is the request's ``model`` slot (its SAE is the one applied to both sides), side B the
``model_b`` slot (or, for the per-prompt ``diff_latents``, the same model on ``prompt_b``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.schemas.analyses import TokenOut
from engine.schemas.common import MAX_PATH, Name, PathName, Slot, TokenInfo
from engine.schemas.saes import SaeInfo


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- diff_latents (a pair analysis: one prompt, two runs) ---------------------------------
class DiffLatentsParams(Params):
    sae: PathName = Field(description="an SAE attached to side A's model, applied to both sides")
    top_k: int = Field(default=5, ge=1, le=20, description="changed latents shown per token")
    n_strongest: int = Field(default=20, ge=1, le=200, description="the prompt's top changes")


class ChangedLatent(BaseModel):
    index: int
    a: float = Field(description="its activation on side A")
    b: float = Field(description="its activation on side B")
    delta: float = Field(description="b - a")


class StrongChange(ChangedLatent):
    pos: int = Field(description="the content position where |delta| is largest")
    label: str
    frequency: float | None = Field(description="share of dataset tokens it fires on (book)")


class DiffLatentsResult(BaseModel):
    sae: SaeInfo
    kind: Literal["models", "prompts"]
    tokens: list[TokenInfo] = Field(description="side A's tokens")
    tokens_b: list[TokenInfo] | None = Field(description="side B's, when its prompt differs")
    top: list[list[ChangedLatent]] = Field(description="[pos][k]: the largest |b - a| at pos")
    l0_a: list[int] = Field(description="[pos]: latents firing on side A")
    l0_b: list[int]
    strongest: list[StrongChange] = Field(
        description="by max |delta| over content tokens (special tokens left out)"
    )


# --- text sets for the jobs --------------------------------------------------------------
class TextSource(BaseModel):
    """Where texts come from: the built-in neutral set (short stories, IOI sentences and facts
    drawn from the base organism's corpus) unless a file or dataset is named (read as the
    latent_examples job reads them: engine/text_sources.py)."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, max_length=MAX_PATH, description="a text file")
    dataset: str | None = Field(default=None, max_length=MAX_PATH, description="a dataset")
    split: Name = Field(default="train", min_length=1)
    column: Name = Field(default="text", min_length=1)
    max_texts: int = Field(default=256, ge=1, le=100_000)

    @model_validator(mode="after")
    def _at_most_one_source(self) -> TextSource:
        if self.path and self.dataset:
            raise ValueError("give a text file (path) or a dataset, not both")
        return self


class TextSetParams(TextSource):
    """Texts to compare the two models on (a ``TextSource``), and the two models."""

    model: Slot = Field(default="a", description="side A: the SAE's model, the reference")
    model_b: Slot = Field(default="b", description="side B: the model compared with A")
    chat: bool = Field(
        default=False,
        description="wrap each text as a user turn in a chat template (side B's, else side "
        "A's), ending where the assistant's reply starts: to compare models on requests",
    )


class AdiffLensParams(TextSetParams):
    positions: int = Field(
        default=5,
        ge=1,
        le=32,
        description="read the first `positions` tokens after the BOS of each text, each "
        "on its own and together (Minder et al.: the first few tokens of unrelated text)",
    )
    top_k: int = Field(default=20, ge=1, le=100, description="tokens and latents per layer")


class LensLayer(BaseModel):
    hook: str = Field(description="the residual stream hook point read")
    layer: int = Field(description="its index: resid_pre of block i is i, the last resid_post L")
    norm: float = Field(description="norm of the mean difference")
    norm_a: float = Field(description="mean norm of side A's activations there, for scale")
    top_tokens: list[TokenOut] = Field(description="largest unembed(norm(delta))")
    top_values: list[float]
    bottom_tokens: list[TokenOut]
    bottom_values: list[float]


class AlignedLatent(BaseModel):
    index: int
    cosine: float = Field(description="cosine of its decoder direction with the mean difference")
    label: str


class LensSae(BaseModel):
    sae: str
    hook: str
    latents: list[AlignedLatent] = Field(description="decoder directions best aligned")
    anti: list[AlignedLatent] = Field(description="most opposed (what B has less of)")


class LensReading(BaseModel):
    pos: int | None = Field(description="the position after the BOS (1 = first); None: all")
    n: int = Field(description="token positions averaged")
    layers: list[LensLayer]
    saes: list[LensSae]


class AdiffLensResult(BaseModel):
    model_a: str
    model_b: str
    over: str = Field(description="the texts: how many, from where")
    n_texts: int
    chat: bool = Field(default=False, description="the texts were wrapped as chat requests")
    positions: int
    normalisation: str = Field(description="how the difference is read through the unembedding")
    mean: LensReading = Field(description="over the first `positions` positions together")
    by_position: list[LensReading] = Field(description="each of the first positions alone")
    cached: bool = False


class ControlSet(TextSource):
    """A control text set for ``latent_diff_set``: the same sources as the main set (the
    built-in neutral texts unless a file or dataset is named), read with the main set's
    ``chat`` and ``where``."""


class LatentDiffSetParams(TextSetParams):
    sae: PathName = Field(description="an SAE attached to side A's model")
    control: ControlSet | None = Field(
        default=None,
        description="a control text set (e.g. harmless requests beside harmful ones): when "
        "given, latents are ranked by their change on the texts minus their change on the "
        "control (``net_delta``), which cancels changes common to both (a chat-format latent "
        "that rises on every request); both changes are reported per latent",
    )
    where: Literal["all", "last"] = Field(
        default="all", description="every content token of each text, or its last token only"
    )
    n_top: int = Field(default=20, ge=1, le=200, description="latents listed each way")
    n_examples: int = Field(default=3, ge=0, le=10, description="texts shown per latent")


class DiffExample(BaseModel):
    text: int = Field(description="its index in the text set")
    tokens: list[str] = Field(description="a window of tokens around the largest change")
    deltas: list[float] = Field(description="[window]: b - a, oriented: positive = the change")
    max_pos: int = Field(description="the largest change's place in the window")


class LatentChange(BaseModel):
    index: int
    label: str
    mean_a: float = Field(description="mean activation over the counted tokens, side A")
    mean_b: float
    delta: float = Field(description="mean_b - mean_a")
    freq_a: float = Field(description="share of counted tokens where it fires, side A")
    freq_b: float
    examples: list[DiffExample] = Field(description="texts where its delta is largest")
    control_delta: float | None = Field(
        default=None, description="mean_b - mean_a on the control set (None: no control)"
    )
    net_delta: float | None = Field(
        default=None, description="delta - control_delta: the ranking key with a control"
    )


class LatentDiffSetResult(BaseModel):
    sae: SaeInfo
    model_a: str
    model_b: str
    over: str
    n_texts: int
    n_tokens: int = Field(description="tokens counted (special tokens left out)")
    chat: bool = Field(default=False, description="the texts were wrapped as chat requests")
    where: Literal["all", "last"]
    increased: list[LatentChange] = Field(
        description="largest delta first (with a control: largest net_delta)"
    )
    decreased: list[LatentChange] = Field(
        description="most negative delta first (with a control: most negative net_delta)"
    )
    freq_increased: list[int] = Field(
        description="latents by firing-frequency gain (with a control: minus the control's)"
    )
    freq_decreased: list[int]
    control_over: str | None = Field(default=None, description="the control texts, if any")
    n_control_texts: int = 0
    n_control_tokens: int = 0
    cached: bool = False
