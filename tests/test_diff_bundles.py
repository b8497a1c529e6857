"""The diff figures' bundles (issue 14): each snippet, run on its own, loads model B as the
engine does (or runs prompt B) and recomputes the bundle's data with the engine's functions."""

from __future__ import annotations

import runpy

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from components import bundles, diff_snippets
from components import diff_figures as dfig
from components.compare import Comparison
from engine.api import create_app
from engine.client import RESULTS, EngineClient
from engine.launcher import REPO_ROOT
from engine.schemas.analyses import AnalysisRequest, AttentionResult
from engine.schemas.diff_latents import AdiffLensResult, LatentDiffSetResult
from engine.schemas.steering import StreamEvent
from engine.service import Engine
from engine.settings import DEFAULT_MODEL_DIR, EngineSettings
from tests.helpers import CHAT_DIR

PROMPT = "The capital of Australia is"
PROMPT_B = "The capital of France is"
pytestmark = pytest.mark.skipif(
    not (CHAT_DIR / "model.safetensors").exists(), reason="the chat organism is not shipped"
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    settings = EngineSettings(model=str(DEFAULT_MODEL_DIR), cache_dir=tmp_path_factory.mktemp("db"))
    eng = Engine(settings)
    with TestClient(create_app(eng)) as api:
        client = EngineClient("http://testserver")
        client._http = api
        client.load_model(str(CHAT_DIR), slot="b")
        yield eng, api
    eng.close()


def ask(eng: Engine, name: str, side: dict, **params):
    """The analysis's answer as the client gives it (its result model, engine.client.RESULTS)."""
    got = eng.analyze(name, AnalysisRequest(prompt=PROMPT, params=params, **side))
    return RESULTS[name].model_validate_json(got)


def run(eng: Engine, spec: bundles.BundleSpec, tmp_path) -> dict:
    info = eng.model_info().model_dump()
    code = bundles.snippet(bundles.ModelRef.from_info(info, REPO_ROOT), PROMPT, spec, "test")
    path = tmp_path / "snippet.py"
    path.write_text(code)
    grad = torch.is_grad_enabled()
    try:
        return runpy.run_path(str(path), run_name="snippet")["data"]
    finally:
        torch.set_grad_enabled(grad)


def same(spec: bundles.BundleSpec, data: dict, atol: float = 1e-4) -> None:
    for key, array in spec.data.items():
        want, got = np.array(array.values, dtype=float), np.array(data[key], dtype=float)
        assert got.shape == want.shape, key
        assert np.allclose(got, want, atol=atol, rtol=1e-4, equal_nan=True), key


def test_model_pair_snippets_recompute_their_data(pair, tmp_path, monkeypatch):
    eng, _ = pair
    monkeypatch.chdir(REPO_ROOT)  # the snippets name the models relative to the repository
    cmp = Comparison(model_b=str(CHAT_DIR))
    b = diff_snippets.side_b(cmp, eng.model_info("b"), REPO_ROOT)
    assert "MODEL_B = 'assets/organism-chat'" in b
    side = {"model_b": "b"}
    kl = ask(eng, "diff_tokens", side, top_k=4, start=1, width=5)
    resid = ask(eng, "diff_resid", side, top_k=3, start=0, width=6)
    comp = ask(eng, "diff_components", side, pos=5)
    specs = [
        diff_snippets.kl_tokens(kl, b),
        diff_snippets.changed_predictions(kl, 4, b),  # pos 5: the capital
        diff_snippets.resid_norms(resid, b),
        diff_snippets.diff_lens(resid, b),
        diff_snippets.components(comp, b),
    ]
    # one script holding every body: the models load once (the bodies use distinct names)
    merged = bundles.BundleSpec(
        data={f"{i}_{k}": a for i, s in enumerate(specs) for k, a in s.data.items()},
        code="\n".join(f"{s.code}\ndata_{i} = data\n" for i, s in enumerate(specs))
        + f"\nN_SPECS = {len(specs)}\n"
        + "data = {f'{i}_{k}': v for i in range(N_SPECS) for k, v in globals()[f'data_{i}'].items()}\n",
    )  # fmt: skip
    same(merged, run(eng, merged, tmp_path))
    assert kl.kl[5] == max(kl.kl)  # and the data is the capital's


def test_prompt_pair_and_pattern_snippets(pair, tmp_path, monkeypatch):
    eng, _ = pair
    monkeypatch.chdir(REPO_ROOT)
    cmp = Comparison(prompt_b=PROMPT_B)
    b = diff_snippets.side_b(cmp, None)
    kl = ask(eng, "diff_tokens", {"prompt_b": PROMPT_B}, top_k=3, start=0, width=6)
    spec = diff_snippets.kl_tokens(kl, b)
    same(spec, run(eng, spec, tmp_path))
    pat = {"layer": 1, "head": 2, "start": 0, "width": 6, "overview": 8}
    a_res = AttentionResult.model_validate_json(
        eng.analyze("attention_pattern", AnalysisRequest(prompt=PROMPT, params=pat))
    )
    b_res = AttentionResult.model_validate_json(
        eng.analyze("attention_pattern", AnalysisRequest(prompt=PROMPT_B, params=pat))
    )
    spec = diff_snippets.pattern_diff(1, 2, 0, a_res, b_res, b)
    same(spec, run(eng, spec, tmp_path), atol=1e-3)


def test_side_by_side_generation_snippet_regenerates(pair, tmp_path, monkeypatch):
    eng, api = pair
    monkeypatch.chdir(REPO_ROOT)
    body = {"prompt": PROMPT, "model_b": "b", "max_new_tokens": 5, "temperature": 0.7, "seed": 3}
    r = api.post("/steering/generate", json=body)
    events = [StreamEvent.model_validate_json(line) for line in r.text.splitlines() if line]
    b = diff_snippets.side_b(Comparison(model_b=str(CHAT_DIR)), eng.model_info("b"), REPO_ROOT)
    spec = diff_snippets.generation(body, events, b)
    same(spec, run(eng, spec, tmp_path), atol=1e-3)


def test_latent_and_text_set_snippets(pair, tmp_path, monkeypatch):
    """The prompt's strongest latent changes, and the two text-set jobs over a few built-in
    texts: the snippets recompute them (SAELens, and engine/adiff.py's own functions)."""
    eng, api = pair
    monkeypatch.chdir(REPO_ROOT)
    b = diff_snippets.side_b(Comparison(model_b=str(CHAT_DIR)), eng.model_info("b"), REPO_ROOT)
    sae = eng.require_model().session.saes.infos()[0].id
    lat = ask(eng, "diff_latents", {"model_b": "b"}, sae=sae, n_strongest=4)
    rows = dfig.strongest_rows(lat)
    texts = diff_snippets.builtin_texts(6)
    job = {"model_b": "b", "max_texts": 6}

    def result(kind: str, params: dict, typed):
        started = api.post(f"/jobs/{kind}", json=params).json()
        done = api.get(f"/jobs/{started['id']}/wait", params={"timeout": 300}).json()
        assert done["job"]["status"] == "done", done
        return typed.model_validate(done["result"])

    adiff = result("adiff_lens", {**job, "top_k": 3}, AdiffLensResult)
    # as chat requests (the Diff page's switch): wrapped in the chat model's template
    chat = result("adiff_lens", {**job, "top_k": 3, "positions": 3, "chat": True}, AdiffLensResult)
    assert chat.chat and not adiff.chat
    assert [x.top_values for x in chat.mean.layers] != [x.top_values for x in adiff.mean.layers]
    ldiff = result("latent_diff_set", {**job, "sae": sae, "n_top": 3}, LatentDiffSetResult)
    specs = [
        diff_snippets.latents(lat, rows, b),
        diff_snippets.adiff_lens(adiff, texts, b),
        diff_snippets.adiff_lens(chat, texts, b),
        diff_snippets.latent_set(ldiff, dfig.set_rows(ldiff), texts, b),
    ]
    for spec in specs:
        same(spec, run(eng, spec, tmp_path), atol=1e-3)
