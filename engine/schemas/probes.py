"""The probe sweep job (engine/probe_sweep.py): its parameters and its result.

Two prompt sets (typed lists, or a labelled dataset: a local data file, a ``save_to_disk``
directory or a hub name, with a text and a label column), a position rule, hook points, a
held-out fraction and a seed. The result has, per hook point (and per position for the
"every" rule), the held-out metrics of a difference-of-means direction, a logistic-regression
probe, the same probe fitted on shuffled labels, and the best single SAE latent where an SAE
reads that hook. The fitted vectors stay in the engine's cache (``sweep`` names them): a
direction is saved from there (``POST /probes/{sweep}/directions``), never shipped whole.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from engine.schemas.common import MAX_PATH, Name, Text

Position = Literal["last", "every", "match"]
Method = Literal["diff_of_means", "logistic_probe"]
MAX_PROMPTS = 5000  # per set
MAX_EVERY = 32  # the "every" rule's positions (from the first token after BOS)


class ProbeSweepParams(BaseModel):
    positive: list[Text] | None = Field(default=None, max_length=MAX_PROMPTS)
    negative: list[Text] | None = Field(default=None, max_length=MAX_PROMPTS)
    dataset: str | None = Field(
        default=None,
        max_length=MAX_PATH,
        description="a labelled dataset: a local data file (csv, json/jsonl, parquet) or "
        "save_to_disk directory in the data directories, or a Hugging Face dataset name",
    )
    split: Name = Field(default="train", min_length=1)
    column: Name = Field(default="text", min_length=1, description="the text column")
    label_column: Name = Field(default="label", min_length=1)
    positive_label: str | None = Field(
        default=None,
        max_length=200,
        description="the label value of the positive set (the rest are negative); default: "
        "the column must hold two values, the larger (sorted) is positive",
    )
    max_texts: int = Field(default=2000, ge=2, le=2 * MAX_PROMPTS)
    position: Position = "last"
    pattern: str | None = Field(
        default=None,
        max_length=200,
        description='"match": the last token whose text matches this regular expression',
    )
    hooks: list[Name] | None = Field(
        default=None,
        max_length=256,
        description="hook points; default every layer's blocks.{l}.hook_resid_pre and the "
        "last layer's hook_resid_post",
    )
    heldout_fraction: float = Field(default=0.25, ge=0.05, le=0.8)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    batch_size: int = Field(default=32, ge=1, le=512)

    # what text_sources.check reads of a source (it also reads latent examples' params)
    @property
    def path(self) -> None:
        return None

    @model_validator(mode="after")
    def _valid(self) -> ProbeSweepParams:
        typed = self.positive is not None or self.negative is not None
        if typed == bool(self.dataset):
            raise ValueError("name one source: two typed prompt sets, or a labelled dataset")
        if typed and (not self.positive or not self.negative):
            raise ValueError("both prompt sets need at least one prompt")
        if self.position == "match":
            if not self.pattern:
                raise ValueError('the "match" position rule needs a pattern')
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"pattern: {e}") from None
        return self


class Metrics(BaseModel):
    """Held-out accuracy and AUROC of one scorer (and its accuracy on the train split)."""

    accuracy: float
    auroc: float
    train_accuracy: float


class LatentMetrics(Metrics):
    sae: str  # the SAE's id
    index: int  # the latent
    sign: Literal[1, -1]  # -1: the latent fires for the negative set


class HookResult(BaseModel):
    hook: str
    position: int | None = None  # "every" rule: the token index (BOS is 0); else None
    diff_of_means: Metrics
    logistic_probe: Metrics
    shuffled: Metrics  # the same probe fitted on shuffled train labels
    sae_latent: LatentMetrics | None = None  # the best single latent, where an SAE reads here
    # per method: the projection onto its unit vector above which the positive set is predicted
    thresholds: dict[str, float] = {}


class ProbeSweepResult(BaseModel):
    sweep: str  # the cache key: names the vectors kept by the engine
    cached: bool
    model: str  # the model's fingerprint
    hooks: list[str]
    position: Position
    pattern: str | None = None
    positions: list[int] | None = None  # "every" rule
    position_tokens: list[str] | None = None  # "every": the first prompt's token at each
    n_positive: int
    n_negative: int
    n_train: int
    n_test: int
    n_dropped: int = 0  # "match": prompts with no matching token
    n_distinct: int | None = Field(
        default=None,
        description="distinct prompt texts among those read (a text given more than once has "
        "all its rows on one side of the split); None in sweeps made before it was counted",
    )
    results: list[HookResult]
    best_hook: str  # the hook (at its best position) whose probe has the best held-out AUROC
    best_position: int | None = None
    wins: dict[str, int]  # how many hook points each scorer is best at (held-out AUROC)


class SaveDirectionRequest(BaseModel):
    hook: Name
    method: Method = "logistic_probe"
    position: int | None = None
    name: Name | None = Field(default=None, description="default: sweep, hook and method")


class StoredProbeSweep(ProbeSweepResult):
    """A finished sweep as ``GET /probes/{sweep}`` answers it: its result and the parameters it
    ran with (the figure bundle's snippet reruns it)."""

    params: ProbeSweepParams | None = None
