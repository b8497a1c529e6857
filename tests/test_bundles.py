"""Figure bundles: each view's snippet, run on its own against the organism, recomputes the
bundle's data; the zip holds what it says; exports render offline in one kept-alive browser."""

from __future__ import annotations

import csv
import inspect
import io
import json
import zipfile
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch
import yaml
from fastapi.testclient import TestClient

from components import bundles, snippets, steering_snippets
from components import steering_setup as ss
from components.dla_figures import bar_terms
from engine import layout, saes, steering
from engine.api import create_app
from engine.client import RESULTS
from engine.launcher import REPO_ROOT
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.arrays import unpack
from engine.schemas.steering import Condition, SteeringVector, StreamEvent
from engine.service import Engine
from tests.snippet_checks import assert_recomputes, assert_same_numbers, run_snippet

ORGANISM = REPO_ROOT / "assets" / "organism"
IOI = "When Mary and John went to the store, John gave a drink to"
REPEAT = "sky ring beach prize store girl sky ring beach prize store girl"


def analyze(engine: Engine, name: str, prompt: str, **params):
    """The analysis's result model, as the app's client gives it."""
    got = engine.analyze(name, AnalysisRequest(prompt=prompt, params=params))
    return RESULTS[name].model_validate_json(got)


def view_specs(engine: Engine) -> list[tuple[str, str, bundles.BundleSpec]]:
    """(case, prompt, spec) for every figure of the Prompt, Attention, Logit lens, DLA views."""
    out = []
    pred = analyze(engine, "predictions", IOI, top_k=5)
    out.append(("predictions", IOI, snippets.predictions(pred, 5)))
    pred = analyze(engine, "predictions", IOI, top_k=5, start=3, width=7)  # the view's window
    out.append(("predictions/window", IOI, snippets.predictions(pred, 5)))
    scores = analyze(engine, "head_scores", REPEAT)
    for s in scores.scores:
        out.append((f"head_scores/{s.name}", REPEAT, snippets.head_scores(scores, s.name)))
    heads = [(1, 2), (0, 3)]
    pats = [
        analyze(engine, "attention_pattern", REPEAT, layer=la, head=h, start=3, width=12)
        for la, h in heads
    ]  # a window that does not start at 0
    blocks = [unpack(p.pattern) for p in pats]
    spec = snippets.patterns(heads, blocks, pats[0].tokens, pats[0].start)
    out.append(("patterns", REPEAT, spec))
    for stage in ("resid_pre", "resid_mid", "resid_post"):
        grid = analyze(engine, "logit_lens", IOI, stage=stage, top_k=3, start=2, width=9)
        out.append((f"logit_lens/{stage}", IOI, snippets.logit_lens(grid)))
    traces = analyze(
        engine, "logit_lens_targets", IOI, stage="resid_mid", pos=5, targets=[" Mary", " John"]
    )
    out.append(("lens_targets", IOI, snippets.lens_targets(traces)))
    for target, baseline in ((None, None), (" Mary", " John")):
        res = analyze(engine, "dla", IOI, pos=None, target=target, baseline=baseline)
        out.append((f"dla_heads/{baseline}", IOI, snippets.dla_heads(res)))
        terms = bar_terms(res) + [("total", res.total)]
        out.append((f"dla_terms/{baseline}", IOI, snippets.dla_terms(res, terms)))
    return out


def test_every_view_snippet_recomputes_its_bundle_data(org, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the snippet names the model directory relative to here
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cases = view_specs(org)
    assert {c.split("/")[0] for c, _, spec in cases if spec} >= {
        "predictions", "head_scores", "patterns", "logit_lens", "lens_targets", "dla_heads",
        "dla_terms",
    }  # fmt: skip
    for case, prompt, spec in cases:
        if spec is None:  # a head score undefined on this prompt has no bundle
            continue
        try:
            assert_recomputes(spec, run_snippet(spec, org, prompt, tmp_path))
        except AssertionError as e:
            raise AssertionError(f"{case}: {e}") from None


def test_view_snippets_hold_the_engine_functions_themselves(org):
    """Not copies: each snippet holds the source of the engine function it runs."""
    from engine.analyses import dla, head_scores, lens_topk, logit_lens, predictions

    lens = [lens_topk.soft_cap, lens_topk.lens_topk, logit_lens.lens_hooks]
    runs = {
        "predictions": [predictions.next_token, predictions.token_loss],
        "head_scores": [head_scores.repeat_masks, head_scores.score_rows],
        "logit_lens": lens,
        "lens_targets": [lens_topk.soft_cap, logit_lens.lens_logits, logit_lens.target_traces],
        "dla_heads": [dla.at_position, dla.logit_attribution],
        "dla_terms": [dla.at_position, dla.logit_attribution],
    }
    seen = set()
    for case, _, spec in view_specs(org):
        for fn in runs.get(case.split("/")[0], []) if spec else []:
            assert inspect.getsource(fn) in spec.code, (case, fn.__name__)
            seen.add(case.split("/")[0])
    assert seen == set(runs)


def test_sae_latents_snippet_recomputes_with_saelens(org, tmp_path, monkeypatch):
    """The SAE latents view's bundle: SAELens loads the shipped SAE and re-encodes."""
    from components.latent_figures import token_latent_figure
    from engine.analyses import sae_latents

    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hooks = sorted(p.name for p in (ORGANISM / "saes").iterdir() if p.is_dir())
    if not hooks:
        pytest.skip("no shipped SAEs")
    prompt = "Once upon a time, there was a happy girl named Lily."
    res = analyze(org, "sae_latents", prompt, sae=hooks[0], top_k=5, n_strongest=5)
    order = token_latent_figure(res).layout.meta["latents"]
    spec = snippets.sae_token_latents(res, order)
    assert any(v is not None for row in spec.data["acts"].values for v in row)
    assert inspect.getsource(sae_latents.top_latents) in spec.code  # the engine's, not a copy
    assert "SAE.load_from_disk('assets/organism/saes/" in run_snippet_code(spec, org, prompt)
    assert_recomputes(spec, run_snippet(spec, org, prompt, tmp_path))


def run_snippet_code(spec: bundles.BundleSpec, engine: Engine, prompt: str) -> str:
    info = engine.model_info().model_dump()
    return bundles.snippet(bundles.ModelRef.from_info(info, REPO_ROOT), prompt, spec, "test")


def test_a_wrong_snippet_is_caught(org, tmp_path, monkeypatch):
    """The comparison is not vacuous: the logit-lens snippet at another stage disagrees."""
    monkeypatch.chdir(REPO_ROOT)
    pre = snippets.logit_lens(analyze(org, "logit_lens", IOI, stage="resid_pre"))
    swapped = bundles.BundleSpec(data=pre.data, code=pre.code.replace("resid_pre", "resid_mid"))
    with pytest.raises(AssertionError):
        assert_recomputes(swapped, run_snippet(swapped, org, IOI, tmp_path))


SAD = "Once upon a time, there was a sad dog named Max."


def steer(engine: Engine, body: dict) -> list[StreamEvent]:
    """The events of a steered generation, streamed as the Steering view reads them."""
    with (
        TestClient(create_app(engine)) as api,
        api.stream("POST", "/steering/generate", json=body) as r,
    ):
        assert r.status_code == 200, r.read()
        return [StreamEvent.model_validate_json(line) for line in r.iter_lines() if line]


def assert_regenerates(spec: bundles.BundleSpec, data: dict) -> None:
    """The same sampled tokens, step for step, and the same KL."""
    assert data["baseline_id"] == spec.data["baseline_id"].values
    assert data["steered_id"] == spec.data["steered_id"].values
    assert_same_numbers(data["kl"], spec.data["kl"].values, "kl")


def resid_norm(engine: Engine, hook: str, prompts: list[str]) -> float:
    """The mean norm of the residual (or output) at `hook` over the prompts' tokens."""
    with torch.no_grad():
        _, cache = engine.lm.model.run_with_cache(engine.lm.model.to_tokens(prompts))
    return float(cache[hook][:, 1:].norm(dim=-1).mean())


def test_steering_kl_snippet_regenerates_a_sampled_contrastive_steering(org, tmp_path, monkeypatch):
    """A contrastive vector at the middle layer, sampled at temperature 0.9 with a seed: the
    snippet recomputes the vector and samples the same tokens; a wrong coefficient is caught."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hook = f"blocks.{org.lm.model.cfg.n_layers // 2}.hook_resid_post"
    pos, neg = ss.EXAMPLE_POSITIVE.splitlines(), ss.EXAMPLE_NEGATIVE.splitlines()
    vec = steering.contrastive(org.lm, pos, neg, hook)
    coef = 0.5 * resid_norm(org, hook, pos + neg) / float(vec.norm())
    v = SteeringVector(kind="contrastive", positive=pos, negative=neg, hook=hook, coefficient=coef)
    body = {"prompt": SAD, "vectors": [v.model_dump(mode="json", exclude_none=True)],
            "max_new_tokens": 20, "temperature": 0.9, "seed": 7}  # fmt: skip
    events = steer(org, body)
    spec = steering_snippets.kl_bundle(body, events)
    assert spec is not None and events[0].vectors[0].hook == hook
    assert spec.data["steered_id"].values != spec.data["baseline_id"].values  # it steers
    assert_regenerates(spec, run_snippet(spec, org, SAD, tmp_path))
    engine_code = (steering._hooks, steering._sample, steering.mean_activation,
                   steering.Continuation, steering._steps, layout.forward_layout)  # fmt: skip
    for fn in engine_code:
        assert inspect.getsource(fn) in spec.code  # the engine's own, not a copy
    assert "for _ in range" not in spec.code  # no loop of its own: the engine's Continuation
    wrong = f"coefficient={coef * 1.1!r},"
    code = spec.code.replace(f"coefficient={coef!r},", wrong)
    assert wrong in code
    bad = bundles.BundleSpec(data=spec.data, code=code)
    with pytest.raises(AssertionError):
        assert_regenerates(bad, run_snippet(bad, org, SAD, tmp_path))


def test_steering_kl_snippet_regenerates_latent_vectors_and_conditions(org, tmp_path, monkeypatch):
    """An SAE latent's and a transcoder latent's decoder rows, one gated by an SAE latent and
    one by a probe direction: gates on at some prompt tokens and off at others (thresholds from
    the model), so the snippet must gate as the engine does; dropping the gates is caught."""
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sae_hooks = sorted(p.name for p in (ORGANISM / "saes").iterdir() if p.is_dir())
    if len(sae_hooks) < 2 or not (ORGANISM / "transcoders" / "config.yaml").is_file():
        pytest.skip("needs two shipped SAEs and the transcoders")
    early, late = sae_hooks[0], sae_hooks[-1]
    ids, _ = org.tokenize(SAD)
    with torch.no_grad():
        _, cache = org.lm.model.run_with_cache(torch.tensor([ids]))
    acts = saes.for_model(org.lm).get(early).encode(cache[early][0])  # [pos, latent]
    latent = int(acts[-1].argmax())  # the strongest at the last token, gating on half its value
    sae_gate = Condition(sae=early, index=latent, threshold=float(acts[-1, latent]) / 2)
    pos, neg = ss.EXAMPLE_POSITIVE.splitlines(), ss.EXAMPLE_NEGATIVE.splitlines()
    probe_hook = "blocks.0.hook_resid_post"
    probe = steering.contrastive(org.lm, pos, neg, probe_hook)
    proj = cache[probe_hook][0, 1:] @ (probe / probe.norm())
    probe_gate = Condition(probe_hook=probe_hook, positive=pos, negative=neg,
                           threshold=float(proj.median()))  # fmt: skip
    tc_layer = org.lm.model.cfg.n_layers // 2
    tc_cfg = yaml.safe_load((ORGANISM / "transcoders" / "config.yaml").read_text())
    tc_index = latent % tc_cfg["training"]["d_transcoder"]  # any valid transcoder latent
    vectors = [
        SteeringVector(kind="sae_latent", sae=early, index=(latent + 1) % acts.shape[-1],
                       coefficient=0.5 * resid_norm(org, early, [SAD])),
        SteeringVector(kind="transcoder_latent", layer=tc_layer, index=tc_index, condition=sae_gate,
                       coefficient=resid_norm(org, f"blocks.{tc_layer}.hook_mlp_out", [SAD])),
        SteeringVector(kind="sae_latent", sae=late, index=latent, condition=probe_gate,
                       coefficient=0.5 * resid_norm(org, late, [SAD])),
    ]  # fmt: skip
    body = {"prompt": SAD, "vectors": [v.model_dump(mode="json", exclude_none=True) for v in vectors],
            "max_new_tokens": 16, "temperature": 0.7, "seed": 1}  # fmt: skip
    events = steer(org, body)
    spec = steering_snippets.kl_bundle(body, events)
    assert spec is not None and spec.data["kl"].values[0] > 0
    assert [v.conditional for v in events[0].vectors] == [False, True, True]
    code = bundles.snippet(bundles.ModelRef.from_info(org.model_info().model_dump(), REPO_ROOT),
                           SAD, spec, "t")  # fmt: skip
    assert "SAE.load_from_disk('assets/organism/saes/" in code
    assert f"load_file('assets/organism/transcoders/layer_{tc_layer}.safetensors'" in code
    assert_regenerates(spec, run_snippet(spec, org, SAD, tmp_path))
    assert inspect.getsource(steering.Probe) in spec.code
    ungated = spec.code.replace("(lat > r.threshold)", "(lat > -float('inf'))")
    assert ungated != spec.code
    bad = bundles.BundleSpec(data=spec.data, code=ungated)
    with pytest.raises(AssertionError):
        assert_regenerates(bad, run_snippet(bad, org, SAD, tmp_path))


def test_steering_kl_bundle_holds_the_steps_once_the_stream_is_done():
    v = {"kind": "contrastive", "coefficient": 2.0, "hook": "blocks.1.hook_resid_post",
         "positive": ["a"], "negative": ["b"]}  # fmt: skip
    body = {"prompt": "x", "vectors": [v], "max_new_tokens": 3, "temperature": 0, "seed": 0}
    start = StreamEvent.model_validate({"type": "start", "prompt_tokens": 2, "vectors": [
        {"label": "contrastive", "hook": v["hook"], "coefficient": 2.0, "norm": 1.0,
         "conditional": False}]})  # fmt: skip
    tokens = [StreamEvent.model_validate(e) for e in [
        {"type": "token", "step": 0, "base": {"id": 5, "text": " a"},
         "steered": {"id": 6, "text": " b"}, "kl": 0.5},
        {"type": "token", "step": 1, "steered": {"id": 7, "text": " c"}, "kl": 0.0},
    ]]  # fmt: skip
    error, done = StreamEvent(type="error"), StreamEvent(type="done")
    assert steering_snippets.kl_bundle(body, [start, *tokens]) is None  # not ended yet
    assert steering_snippets.kl_bundle(body, [start, *tokens, error]) is None
    spec = steering_snippets.kl_bundle(body, [start, *tokens, done])
    assert spec.data["kl"].values == [0.5, 0.0]
    assert spec.data["baseline_id"].values == [5, None]  # the baseline stopped at EOS
    assert spec.labels == {"baseline_token": [" a", ""], "steered_token": [" b", " c"]}
    assert "TEMPERATURE, TOP_K, SEED, STOP_AT_EOS = 3, 0.0, None, 0, True" in spec.code
    rows = list(csv.DictReader(io.StringIO(bundles.to_csv(spec.data["steered_id"], spec.labels))))
    assert rows[1] == {"steered_token": "1", "steered_token_label": " c", "value": "7"}
    compile(spec.code, "snippet.py", "exec")


def test_snippet_loads_a_hub_model_with_from_pretrained():
    ref = bundles.ModelRef.from_info({"name": "gpt2", "ref": "gpt2", "source": "hub"})
    code = bundles.snippet(ref, "Hi", bundles.BundleSpec(data={}, code="data = {}"), "t")
    assert "HookedTransformer.from_pretrained(MODEL)" in code and "MODEL = 'gpt2'" in code
    compile(code, "snippet.py", "exec")
    local = bundles.ModelRef.from_info(
        {"name": "organism", "ref": str(ORGANISM), "source": "local"}, REPO_ROOT
    )
    assert local.ref == "assets/organism" and local.local


def test_zip_holds_images_data_csv_and_snippet():
    spec = bundles.BundleSpec(
        data={
            "heads": bundles.Array(("layer", "head"), [[0.5, -1.0, 2.0], [0.0, 1.5, None]]),
            "loss": bundles.Array(("pos",), [None, 1.25]),
        },
        code="data = {}",
        labels={"pos": ["<bos>", " a"]},
    )
    raw = bundles.make_zip(
        "fig", png=b"\x89PNG..", svg=b"<svg/>", spec=spec, code="print(1)\n",
        meta={"caption": "Model: m", "params": {"pos": 1}},
    )  # fmt: skip
    z = zipfile.ZipFile(io.BytesIO(raw))
    names = set(z.namelist())
    assert names == {f"fig/{n}" for n in ("fig.png", "fig.svg", "data.json", "heads.csv",
                                           "loss.csv", "snippet.py", "README.txt")}  # fmt: skip
    data = json.loads(z.read("fig/data.json"))
    assert data["arrays"]["heads"]["values"][1][1] == 1.5 and data["params"] == {"pos": 1}
    rows = list(csv.DictReader(io.StringIO(z.read("fig/heads.csv").decode())))
    assert len(rows) == 6 and rows[5] == {"layer": "1", "head": "2", "value": ""}
    loss = list(csv.DictReader(io.StringIO(z.read("fig/loss.csv").decode())))
    assert loss[1] == {"pos": "1", "pos_label": " a", "value": "1.25"}
    assert z.read("fig/snippet.py") == b"print(1)\n"


def test_figure_bundle_takes_the_model_info_the_client_gives(org, monkeypatch):
    """The view hands over the client's ``ModelInfo``: its fields go into data.json and the
    snippet loads that model (images stubbed: rendering is tested below)."""
    from components import export

    monkeypatch.setattr(export, "export_figure", lambda fig, caption: fig)
    monkeypatch.setattr(export, "figure_bytes", lambda fig, fmt: b"img")
    info = org.model_info()
    spec = bundles.BundleSpec(data={"x": bundles.Array(("i",), [1.0])}, code="data = {'x': [1.0]}")
    raw = bundles.figure_bundle(go.Figure(), spec, name="f", caption="c", params={}, prompt="Hi",
                                model_info=info, cwd=REPO_ROOT)  # fmt: skip
    z = zipfile.ZipFile(io.BytesIO(raw))
    assert json.loads(z.read("f/data.json"))["model"]["fingerprint"] == info.fingerprint
    assert "MODEL = 'assets/organism'" in z.read("f/snippet.py").decode()


def test_export_renders_paper_png_and_svg_in_one_kept_browser():
    from components import export
    from components.theme import PAPER_WIDTH

    if not export.shutil.which("chromium") and not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium for kaleido")
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    fig.update_layout(height=300, template="interpscope_presenter")
    out = export.export_figure(fig, "Model: organism · Prompt: 'x' · pos=1")
    assert out.layout.width == PAPER_WIDTH and out.layout.template.layout.font.size == 12
    png = export.figure_bytes(out, "png")
    browser = export.RENDERER._kaleido
    svg = export.figure_bytes(out, "svg").decode()
    assert export.RENDERER._kaleido is browser  # the same browser served both
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")
    assert width == 3 * PAPER_WIDTH
    assert "<svg" in svg and "Model: organism" in svg


def test_export_page_loads_nothing_from_the_network():
    """kaleido's default page pulls MathJax from a CDN; ours turns it off."""
    from kaleido import PageGenerator

    page = PageGenerator(mathjax=False).generate_index()
    assert "http://" not in page and "https://" not in page
    assert "https://" in PageGenerator().generate_index()  # what mathjax=False avoids


def test_steering_kl_snippet_regenerates_saved_directions_acted_on(tmp_path, monkeypatch):
    """Two saved directions ablated at every layer (their span, together), one also added at
    one layer, next to a steering vector, sampled: the snippet holds the saved unit vectors
    and the engine's own interventions code, and samples the same tokens with the same KL; a
    wrong coefficient is caught."""
    from engine import interventions
    from engine.schemas.directions import Direction
    from engine.settings import DEFAULT_MODEL_DIR, EngineSettings

    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("the demo organism is not shipped here")
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    eng = Engine(EngineSettings(model=str(DEFAULT_MODEL_DIR), cache_dir=tmp_path / "cache",
                                data_dirs=[tmp_path]))  # fmt: skip
    try:
        pos, neg = ss.EXAMPLE_POSITIVE.splitlines(), ss.EXAMPLE_NEGATIVE.splitlines()
        hook = "blocks.1.hook_resid_pre"
        d = steering.contrastive(eng.lm, pos, neg, hook)
        with TestClient(create_app(eng)) as api:
            body = {"name": "mood", "hook": hook, "vector": d.tolist()}
            assert api.post("/directions", json=body).status_code == 200
            d0 = steering.contrastive(eng.lm, pos, neg, "blocks.0.hook_resid_pre")
            body = {"name": "mood0", "hook": "blocks.0.hook_resid_pre", "vector": d0.tolist()}
            assert api.post("/directions", json=body).status_code == 200
            saved = {n: Direction.model_validate(api.get(f"/directions/{n}").json())
                     for n in ("mood", "mood0")}  # fmt: skip
        coef = 0.5 * resid_norm(eng, hook, pos + neg)
        last = f"blocks.{eng.lm.model.cfg.n_layers - 1}.hook_resid_pre"
        v = SteeringVector(kind="contrastive", positive=pos, negative=neg, hook=last,
                           coefficient=0.3 * resid_norm(eng, last, pos + neg) / float(d.norm()))  # fmt: skip
        acting = [
            {"name": "mood", "mode": "ablate", "layers": "all", "coeff": 1.0},
            {"name": "mood", "mode": "add", "layers": [2], "coeff": coef},
            {"name": "mood0", "mode": "ablate"},
        ]  # fmt: skip  (ablated together: a span)
        body = {"prompt": SAD, "vectors": [v.model_dump(mode="json", exclude_none=True)],
                "directions": acting, "max_new_tokens": 16, "temperature": 0.8, "seed": 3}  # fmt: skip
        events = steer(eng, body)
        assert steering_snippets.kl_bundle(body, events) is None  # the vectors not given
        spec = steering_snippets.kl_bundle(body, events, saved)
        assert (
            spec is not None and spec.data["steered_id"].values != spec.data["baseline_id"].values
        )
        for fn in (interventions.hooks, interventions.hook_points, interventions.ablate_span,
                   interventions.residual_direction, steering._hooks):  # fmt: skip
            assert inspect.getsource(fn) in spec.code  # the engine's own, not a copy
        assert_regenerates(spec, run_snippet(spec, eng, SAD, tmp_path))
        line = f"'add', acted_1, at_1, {coef!r},"
        assert line in spec.code
        bad = bundles.BundleSpec(data=spec.data, code=spec.code.replace(line, f"'add', acted_1, at_1, {coef * 1.2!r},"))  # fmt: skip
        with pytest.raises(AssertionError):
            assert_regenerates(bad, run_snippet(bad, eng, SAD, tmp_path))
    finally:
        eng.close()
