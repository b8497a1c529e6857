"""Every analysis the engine serves, in one explicit list: adding one to ``ANALYSES`` is what
gives it its route (``POST /analysis/{name}``) and its capability (``GET /capabilities``)."""

from __future__ import annotations

from engine.analyses import (
    attention,
    attention_layer,
    diff_components,
    diff_latents,
    diff_resid,
    diff_tokens,
    dla,
    head_scores,
    latent_detail,
    latent_search,
    logit_lens,
    predictions,
    sae_latents,
)
from engine.analyses.base import Analysis
from engine.loading import LoadedModel
from engine.schemas.model import Capability

ANALYSES: tuple[Analysis, ...] = (
    predictions.PREDICTIONS,
    attention.ATTENTION_PATTERN,
    attention_layer.ATTENTION_LAYER,
    head_scores.HEAD_SCORES,
    logit_lens.LOGIT_LENS,
    logit_lens.LOGIT_LENS_TARGETS,
    dla.DLA,
    sae_latents.SAE_LATENTS,
    latent_detail.LATENT_DETAIL,
    latent_search.LATENT_SEARCH,
    # pair analyses (issue 14: engine/pairs.py)
    diff_tokens.DIFF_TOKENS,
    diff_resid.DIFF_RESID,
    diff_components.DIFF_COMPONENTS,
    diff_latents.DIFF_LATENTS,
)


def by_name(analyses: tuple[Analysis, ...]) -> dict[str, Analysis]:
    out: dict[str, Analysis] = {}
    for a in analyses:
        if a.name in out:
            raise ValueError(f"analysis {a.name!r} listed twice")
        out[a.name] = a
    return out


REGISTRY: dict[str, Analysis] = by_name(ANALYSES)


def feature_capabilities(lm: LoadedModel | None) -> dict[str, Capability]:
    """Each analysis feature's capability, in the order the list first names it: the
    availability its analyses declare."""
    out: dict[str, Capability] = {}
    for a in ANALYSES:
        if a.feature not in out:
            ok, why = a.available(lm)
            out[a.feature] = Capability(available=ok, reason=why)
    return out
