"""The views share one forward pass per prompt and answer from the cache on a repeat."""

from __future__ import annotations

VIEW_CALLS = [
    ("head_scores", {}),
    ("attention_layer", {"layer": 1}),
    ("attention_pattern", {"layer": 0, "head": 1}),
    ("logit_lens", {"stage": "resid_pre"}),
    ("logit_lens_targets", {"stage": "resid_pre"}),
    ("dla", {}),
    ("dla", {"pos": 2}),
]


def test_first_visit_is_one_forward_and_a_repeat_is_all_cache(api, engine, model, monkeypatch):
    calls = []
    real = model.run_with_cache

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "run_with_cache", counted)
    prompt = "A prompt no other test uses, about seven ducks and seven geese"
    first = [
        api.post(f"/analysis/{n}", json={"prompt": prompt, "params": p}).content
        for n, p in VIEW_CALLS
    ]
    assert len(calls) == 1
    hits = engine.cache.stats().hits
    engine.runs.clear()  # a repeat must not need the run either
    again = [
        api.post(f"/analysis/{n}", json={"prompt": prompt, "params": p}).content
        for n, p in VIEW_CALLS
    ]
    assert len(calls) == 1 and again == first
    assert engine.cache.stats().hits == hits + len(VIEW_CALLS)
