"""The analyses' one list: every module's analysis is in it once, and capabilities come from it."""

from __future__ import annotations

import pkgutil

import engine.analyses
from engine.analyses.base import Analysis
from engine.analyses.registry import ANALYSES, REGISTRY


def test_every_analysis_defined_is_listed_once():
    defined = set()
    for info in pkgutil.iter_modules(engine.analyses.__path__):
        mod = __import__(f"engine.analyses.{info.name}", fromlist=["_"])
        defined |= {id(v) for v in vars(mod).values() if isinstance(v, Analysis)}
    assert defined == {id(a) for a in ANALYSES}
    assert len(REGISTRY) == len(ANALYSES)


def test_capabilities_name_every_analysis_feature(engine):
    caps = engine.capabilities()
    assert {a.feature for a in ANALYSES} <= set(caps.features)
    assert set(caps.analyses) == set(REGISTRY)
    for a in ANALYSES:
        assert caps.features[a.feature].available == a.available(engine.lm)[0]
