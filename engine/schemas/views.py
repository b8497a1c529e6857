"""Old home of the Attention, Logit lens and DLA views' models, now in
engine/schemas/analyses.py; re-exported here for code that still imports them from here."""

from engine.schemas.analyses import (  # noqa: F401
    LAYER_WIDTH,
    LENS_MAX_K,
    AttentionLayerParams,
    AttentionLayerResult,
    DLAParams,
    DLAResult,
    HeadScore,
    HeadScoresParams,
    HeadScoresResult,
    LensRows,
    LensStage,
    LensTargetsParams,
    LensTargetsResult,
    LensTrace,
    LogitLensParams,
    LogitLensResult,
    Params,
    TargetRef,
    TokenOut,
)
