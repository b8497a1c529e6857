"""Saved directions (engine/directions.py) and acting on them (engine/interventions.py) on tiny
random GPT-2s: the store's files, routes and model fingerprints; add, ablate and cap against
the same edit written here with plain TransformerLens hooks; gates; the steering stream."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient

from engine import directions, interventions, steering
from engine.api import create_app
from engine.errors import EngineError
from engine.schemas.directions import Direction, DirectionIntervention
from engine.schemas.steering import Condition, SteerRequest
from engine.service import Engine
from engine.settings import EngineSettings
from tests.helpers import make_tiny_gpt2

HOOK = "blocks.1.hook_resid_pre"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """Two models of one shape (seeds 0 and 1) and one of another (3 layers)."""
    root = tmp_path_factory.mktemp("models")
    return {
        "a": make_tiny_gpt2(root / "a", seed=0, random_biases=True),
        "b": make_tiny_gpt2(root / "b", seed=1, random_biases=True),
        "c": make_tiny_gpt2(root / "c", seed=0, n_layer=3),
    }


@pytest.fixture(scope="module")
def eng(dirs, data_dir, tmp_path_factory):
    settings = EngineSettings(
        model=str(dirs["a"]), cache_dir=tmp_path_factory.mktemp("cache"), data_dirs=[data_dir]
    )
    e = Engine(settings)
    yield e
    e.close()


@pytest.fixture(scope="module")
def api(eng):
    with TestClient(create_app(eng)) as c:
        yield c


def rand_vec(d: int, seed: int = 0) -> list[float]:
    return torch.randn(d, generator=torch.Generator().manual_seed(seed)).tolist()


def test_save_list_get_delete_as_files(api, eng, data_dir):
    d_model = eng.lm.model.cfg.d_model
    v = rand_vec(d_model)
    body = {"name": "sent", "hook": HOOK, "vector": v,
            "provenance": {"method": "diff_of_means"}, "metrics": {"auroc": 0.9}}  # fmt: skip
    info = api.post("/directions", json=body).json()
    assert info["compatibility"] == "same_model" and info["method"] == "diff_of_means"
    assert info["norm"] == pytest.approx(float(torch.tensor(v).norm()), rel=1e-6)
    assert [i["name"] for i in api.get("/directions").json()] == ["sent"]
    got = Direction.model_validate(api.get("/directions/sent").json())
    want = torch.tensor(v) / torch.tensor(v).norm()
    torch.testing.assert_close(torch.tensor(got.vector), want)
    assert got.model_fingerprint == directions.model_fingerprint(eng.lm.model)
    files = sorted(p.name for p in (data_dir / "directions").iterdir())
    assert files == ["sent.json", "sent.safetensors"]  # a pair, no temporary left over
    meta = json.loads((data_dir / "directions" / "sent.json").read_text())
    assert "vector" not in meta and meta["metrics"] == {"auroc": 0.9}
    assert api.delete("/directions/sent").json() == {"deleted": "sent"}
    assert api.get("/directions").json() == []
    assert api.get("/directions/sent").status_code == 404
    assert not any((data_dir / "directions").iterdir())


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "x" * 81, ""])
def test_names_are_confined(api, eng, name):
    body = {"name": name, "hook": HOOK, "vector": rand_vec(eng.lm.model.cfg.d_model)}
    assert api.post("/directions", json=body).status_code == 422


def test_bad_size_and_hook_refused(api, eng):
    d = eng.lm.model.cfg.d_model
    r = api.post("/directions", json={"name": "x", "hook": HOOK, "vector": rand_vec(d + 1)})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_direction_size"
    r = api.post("/directions", json={"name": "x", "hook": "blocks.9.nope", "vector": rand_vec(d)})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_hook_point"
    r = api.post("/directions", json={"name": "x", "hook": HOOK, "vector": [0.0] * d})
    assert r.status_code == 422 and r.json()["error"]["code"] == "zero_direction"


def test_fingerprints_tell_models_apart(dirs, data_dir):
    from engine.loading import load_model

    a, b, c = (load_model(str(dirs[k])).model for k in "abc")
    fa = directions.model_fingerprint(a)
    assert fa == directions.model_fingerprint(load_model(str(dirs["a"])).model)  # stable
    assert len({fa, directions.model_fingerprint(b), directions.model_fingerprint(c)}) == 3
    assert directions.model_shape(a) == directions.model_shape(b) != directions.model_shape(c)
    on_a = directions.DirectionStore(data_dir / "fp", a, "a")
    on_a.save(Direction(name="d", hook=HOOK, vector=rand_vec(a.cfg.d_model)))
    on_b = directions.DirectionStore(data_dir / "fp", b, "b")
    assert on_b.list() == [] and on_b.list(all_models=True)[0].compatibility == "same_shape"
    with pytest.raises(EngineError) as e:
        on_b.usable("d")
    assert e.value.status == 409 and "allow_other_model" in e.value.message
    assert on_b.usable("d", allow_other_model=True).name == "d"
    on_c = directions.DirectionStore(data_dir / "fp", c, "c")
    assert on_c.list(all_models=True)[0].compatibility == "other_model"
    with pytest.raises(EngineError) as e:
        on_c.usable("d", allow_other_model=True)
    assert e.value.status == 409 and "another space" in e.value.message


# --- the edits against plain hooks ------------------------------------------------------------
def test_edits_are_the_formulas():
    g = torch.Generator().manual_seed(0)
    x, r = torch.randn(2, 5, 16, generator=g), torch.randn(16, generator=g)
    r = r / r.norm()
    p = x @ r
    torch.testing.assert_close(interventions.ablate(x, r) @ r, torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(interventions.ablate(x, r, 0.5), x - 0.5 * p[..., None] * r)
    torch.testing.assert_close(interventions.add(x, r, 3.0) - x, 3.0 * r.expand_as(x))
    capped = interventions.cap(x, r, -0.2, 0.3)
    torch.testing.assert_close(capped @ r, p.clamp(-0.2, 0.3))
    rest = capped - (capped @ r)[..., None] * r
    torch.testing.assert_close(rest, x - p[..., None] * r)  # only the projection moved


def test_hook_points():
    hp = interventions.hook_points
    assert hp("ablate", None, HOOK, 2) == [
        f"blocks.{i}.{h}" for i in range(2) for h in interventions.ABLATE_AT
    ]
    assert hp("ablate", [1], HOOK, 2) == [f"blocks.1.{h}" for h in interventions.ABLATE_AT]
    assert hp("add", None, HOOK, 2) == [HOOK]
    assert hp("add", [0, 1], "blocks.1.hook_resid_post", 2) == [
        "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"
    ]  # fmt: skip
    with pytest.raises(EngineError):
        hp("cap", [5], HOOK, 2)


@pytest.fixture(scope="module")
def saved(eng):
    store = directions.for_model(eng.lm, directions.folder(eng))
    store.save(Direction(name="r", hook=HOOK, vector=rand_vec(eng.lm.model.cfg.d_model, 3)))
    return store


def direct_logits(model, ids, edits: dict):
    """The logits with `edits` {hook name: fn(x)} as plain TransformerLens hooks."""
    return model.run_with_hooks(
        ids, fwd_hooks=[(n, lambda x, hook, f=f: f(x)) for n, f in edits.items()]
    )


@pytest.mark.parametrize(
    "it",
    [
        DirectionIntervention(name="r", mode="add", coeff=4.0),
        DirectionIntervention(name="r", mode="ablate"),
        DirectionIntervention(name="r", mode="ablate", layers=[1]),
        DirectionIntervention(name="r", mode="cap", lo=-0.1, hi=0.1, layers="all"),
    ],
    ids=["add", "ablate_all", "ablate_layer1", "cap"],
)
def test_interventions_equal_direct_hooks(eng, saved, it):
    lm = eng.lm
    model = lm.model
    r = directions.tensor(saved.get("r"))
    if it.mode != "add":  # a projection: the residual stream of a LayerNorm model is mean-free
        r = (r - r.mean()) / (r - r.mean()).norm()
    ids = model.to_tokens("Once upon a time, there was a happy dog.")
    applied = interventions.resolve(lm, [it], saved)
    with torch.inference_mode():
        got = model.run_with_hooks(
            ids, fwd_hooks=interventions.hooks(applied, "cpu", torch.float32)
        )
        clean = model(ids)
        if it.mode == "add":
            edits = {HOOK: lambda x: x + 4.0 * r}
        elif it.mode == "ablate":
            layers = range(model.cfg.n_layers) if it.layers is None else it.layers
            edits = {f"blocks.{i}.{h}": (lambda x: x - (x @ r)[..., None] * r)
                     for i in layers for h in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")}  # fmt: skip
        else:
            edits = {f"blocks.{i}.hook_resid_pre": (lambda x: x + ((x @ r).clamp(-0.1, 0.1) - x @ r)[..., None] * r)
                     for i in range(model.cfg.n_layers)}  # fmt: skip
        want = direct_logits(model, ids, edits)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert (got - clean).abs().max() > 1e-3  # it did something


def test_ablated_everywhere_leaves_no_component(eng, saved):
    model = eng.lm.model
    r = directions.tensor(saved.get("r"))
    r = (r - r.mean()) / (r - r.mean()).norm()
    applied = interventions.resolve(eng.lm, [DirectionIntervention(name="r", mode="ablate")], saved)
    names = [
        f"blocks.{i}.hook_resid_{k}"
        for i in range(model.cfg.n_layers)
        for k in ("pre", "mid", "post")
    ]
    ids = model.to_tokens("Once upon a time, there was a dog.")
    with (
        torch.inference_mode(),
        model.hooks(fwd_hooks=interventions.hooks(applied, "cpu", torch.float32)),
    ):
        _, cache = model.run_with_cache(ids, names_filter=lambda n: n in names)
    for n in names:
        assert (cache[n] @ r).abs().max() < 1e-4, n


def test_gate_applies_only_where_it_fires(eng, saved):
    """Gated by the saved direction itself above a threshold: positions below it are left as
    they were; the edit happens at the others (direct computation at the one hook)."""
    model = eng.lm.model
    r = directions.tensor(saved.get("r"))
    ids = model.to_tokens("Once upon a time, there was a happy dog and a sad cat.")
    with torch.inference_mode():
        _, cache = model.run_with_cache(ids, names_filter=lambda n: n == HOOK)
    proj = cache[HOOK][0] @ r
    thr = float(proj.median())
    it = DirectionIntervention(name="r", mode="add", coeff=5.0,
                               gate=Condition(direction="r", threshold=thr))  # fmt: skip
    applied = interventions.resolve(eng.lm, [it], saved)
    fires = (proj > thr)[None, :, None]
    with torch.inference_mode():
        got = model.run_with_hooks(
            ids, fwd_hooks=interventions.hooks(applied, "cpu", torch.float32)
        )
        want = direct_logits(model, ids, {HOOK: lambda x: torch.where(fires, x + 5.0 * r, x)})
    assert 0 < int(fires.sum()) < ids.shape[1]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    late = it.model_copy(update={"gate": Condition(direction="r"), "layers": [0]})
    with pytest.raises(EngineError) as e:
        interventions.resolve(eng.lm, [late], saved)
    assert e.value.code == "condition_after_hook"


def test_steering_stream_acts_on_a_saved_direction(api, eng, saved):
    """Greedy continuations through /steering/generate: ablation = the plain-hook greedy run."""
    model = eng.lm.model
    r = directions.tensor(saved.get("r"))
    body = {"prompt": "Once upon a time", "max_new_tokens": 6, "temperature": 0,
            "directions": [{"name": "r", "mode": "add", "coeff": 6.0}]}  # fmt: skip
    lines = [json.loads(x) for x in api.post("/steering/generate", json=body).text.splitlines()]
    assert lines[0]["vectors"][0]["label"].startswith("r (add")
    steered = [e["steered"]["id"] for e in lines if e["type"] == "token"]
    ids = model.to_tokens("Once upon a time")
    with torch.inference_mode():
        for _ in range(6):
            nxt = direct_logits(model, ids, {HOOK: lambda x: x + 6.0 * r})[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], 1)
    assert steered == ids[0, -6:].tolist()
    bad = {**body, "directions": [{"name": "missing"}]}
    assert api.post("/steering/generate", json=bad).status_code == 404
    req = SteerRequest(prompt="x", directions=[{"name": "r"}])
    assert steering.resolve(eng.lm, req.vectors) == []  # vectors and directions apart


def test_export_orthogonalised_equals_hook_ablation(api, eng, saved, data_dir):
    """The exported directory loads back (engine's own load path) and gives the hook-ablated
    model's logits and greedy tokens; the tiny model ties its unembedding, so the export
    unties it; its random biases are orthogonalised too."""
    from engine.loading import load_model

    got = api.post("/directions/export", json={"direction": "r", "out": "tiny-r"}).json()
    out = data_dir / "exports" / "tiny-r"
    assert got["path"] == str(out.resolve())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(got["files"])
    assert any(n.endswith("attn.c_proj.bias") for n in got["changed"])
    assert any(n.endswith("mlp.c_proj.weight") for n in got["changed"])
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is False
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp")]
    model = eng.lm.model
    ortho = load_model(str(out)).model
    hooks = interventions.hooks(
        interventions.resolve(eng.lm, [DirectionIntervention(name="r", mode="ablate")], saved),
        "cpu", torch.float32,
    )  # fmt: skip
    ids = model.to_tokens("Once upon a time, there was a happy dog named Max.")
    with torch.inference_mode():
        want, mine, clean = model.run_with_hooks(ids, fwd_hooks=hooks), ortho(ids), model(ids)
        assert (want - clean).abs().max() > 1e-2
        torch.testing.assert_close(mine, want, atol=1e-4, rtol=1e-4)
        a, b = ids, ids
        for _ in range(8):
            a = torch.cat([a, model.run_with_hooks(a, fwd_hooks=hooks)[:, -1:].argmax(-1)], 1)
            b = torch.cat([b, ortho(b)[:, -1:].argmax(-1)], 1)
    assert a.tolist() == b.tolist()
    bad = api.post("/directions/export", json={"direction": "r", "out": "../x"})
    assert bad.status_code == 422


def test_sweep_job_figure_and_bundle_snippet(api, eng, saved, tmp_path):
    """The sweep on the tiny model: value 0 is the baseline (KL 0), the KL grows with the
    coefficient; the figure draws both; the bundle's snippet (the engine's functions)
    recomputes the rates and KLs."""
    from components import direction_figures as dfig
    from engine import direction_sweep
    from engine.schemas.directions import Direction, SweepResult
    from tests.test_bundles import assert_recomputes, run_snippet

    model, tok = eng.lm.model, eng.lm.model.tokenizer
    prompts = ["Once upon a time", "There was a dog", "The sky was", "One day, she"]
    clean = direction_sweep.greedy(
        model, direction_sweep.encode(eng.lm, prompts, False), [], 5, None
    )
    word = tok.decode(clean[0]).split()[0]  # a keyword the clean model writes
    params = {"intervention": {"name": "r", "mode": "add", "layers": [0, 1]},
              "values": [0.0, 3.0, 12.0], "prompts": prompts, "harmless": prompts[:2],
              "classifier": {"keywords": [word]}, "max_new_tokens": 5}  # fmt: skip
    job = api.post("/jobs/direction_sweep", json=params).json()
    res = api.get(f"/jobs/{job['id']}/wait?timeout_s=120").json()
    assert res["job"]["status"] == "done", res
    got = res["result"]
    texts = [tok.decode(g) for g in clean]
    assert got["baseline_rate"] == sum(word.lower() in t.lower() for t in texts) / 4 > 0
    assert got["rows"][0]["rate"] == got["baseline_rate"] and got["rows"][0]["kl"] == 0.0
    assert 0 < got["rows"][1]["kl"] < got["rows"][2]["kl"]
    assert got["hook_points"] == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    typed = SweepResult.model_validate(got)  # as the Directions page holds the job's answer
    fig = dfig.sweep_figure(typed, "keyword")
    assert [list(t.y) for t in fig.data] == [[r["rate"] for r in got["rows"]],
                                             [r["kl"] for r in got["rows"]]]  # fmt: skip
    spec = dfig.sweep_bundle(
        params, typed, Direction.model_validate(api.get("/directions/r").json())
    )
    assert "def greedy(" in spec.code and "def ablate(" in spec.code  # the engine's own
    assert_recomputes(spec, run_snippet(spec, eng, "Once upon a time", tmp_path))
    bad = {**params, "intervention": {"name": "r", "mode": "ablate", "layers": [7]}}
    assert api.post("/jobs/direction_sweep", json=bad).status_code == 422


def test_panel_helpers_and_setup_round_trip():
    from components import directions_panel as dp
    from components import steering_setup as ss

    it = dp.intervention("sent", "cap", [1, 2], lo=-1.0, hi=2.0)
    assert it == {"name": "sent", "mode": "cap", "layers": [1, 2], "coeff": 1.0, "lo": -1.0,
                  "hi": 2.0, "allow_other_model": False}  # fmt: skip
    with pytest.raises(ValueError, match="lo or hi"):
        dp.intervention("sent", "cap", None)
    with pytest.raises(ValueError):
        dp.intervention("../x", "add", None)
    assert dp.parse_values("0, 0.5;1") == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="'x'"):
        dp.parse_values("0, x")
    assert (
        dp.describe({"name": "r", "mode": "ablate", "coeff": 1.0}) == "ablate r × 1 at every layer"
    )
    setup = {"vectors": [], "directions": [dp.intervention("r", "add", None, 3.0)]}
    assert ss.from_url(ss.to_url(setup))["directions"] == setup["directions"]


def test_sweep_with_a_probe_classifier(api, eng, saved):
    """A saved probe direction classifies continuations by its mean projection over the
    generated tokens, read by the unmodified model (computed here with run_with_cache)."""
    from engine import direction_sweep

    model = eng.lm.model
    r = directions.tensor(saved.get("r"))
    prompts = ["Once upon a time", "There was a dog", "The sky was", "One day, she", "Max and"]
    ids = direction_sweep.encode(eng.lm, prompts, False)

    def scores(hooks) -> list[float]:
        gens = direction_sweep.greedy(model, ids, hooks, 4, None)
        out = []
        with torch.inference_mode():
            for p, g in zip(ids, gens, strict=True):
                _, cache = model.run_with_cache(torch.tensor([p + g]), names_filter=HOOK)
                out.append(float((cache[HOOK][0, len(p) :] @ r).mean()))
        return out

    clean = scores([])
    thr = sorted(clean)[2]  # two of five above it
    params = {"intervention": {"name": "r", "mode": "add"}, "values": [-20.0, 20.0],
              "prompts": prompts, "harmless": prompts[:1], "max_new_tokens": 4,
              "classifier": {"probe": "r", "threshold": thr}}  # fmt: skip
    job = api.post("/jobs/direction_sweep", json=params).json()
    got = api.get(f"/jobs/{job['id']}/wait?timeout_s=120").json()["result"]
    assert got["baseline_rate"] == sum(s > thr for s in clean) / 5 == 0.4
    assert [row["rate"] for row in got["rows"]] == [0.0, 1.0]  # measured: it moves both ways
    for row, c in zip(got["rows"], (-20.0, 20.0), strict=True):
        steered = scores([(HOOK, lambda x, hook, c=c: x + c * r)])
        assert row["rate"] == sum(s > thr for s in steered) / 5


def test_several_whole_ablations_remove_their_span():
    """Two non-orthogonal directions ablated whole at one hook point: their span is removed
    (no component along either), which one after the other leaves undone; an ablation of
    part of a direction (coeff 0.5) still acts on its own, after the joint one."""
    from engine import orthogonalise

    g = torch.Generator().manual_seed(1)
    x, a, b, c = torch.randn(3, 7, 16, generator=g), *torch.randn(3, 16, generator=g)
    a, b = a / a.norm(), (b + 2 * a) / (b + 2 * a).norm()
    c = c / c.norm()
    q = interventions.span([a, b, a + b])  # a third already in the span adds no column
    assert q.shape == (16, 2)
    torch.testing.assert_close(q.T @ q, torch.eye(2), atol=1e-6, rtol=0)
    at = ["blocks.0.hook_resid_pre"]
    applied = [interventions.Applied("a", "ablate", a, at), interventions.Applied("b", "ablate", b, at),
               interventions.Applied("c", "ablate", c, at, coeff=0.5)]  # fmt: skip
    ((_, both),) = interventions.hooks(applied[:2], "cpu", torch.float32)
    for r in (a, b):
        assert (both(x.clone(), None) @ r).abs().max() < 1e-5
    ((_, fn),) = interventions.hooks(applied, "cpu", torch.float32)
    got = fn(x.clone(), None)
    one_by_one = interventions.ablate(interventions.ablate(x, a), b)
    assert (one_by_one @ a).abs().max() > 1e-2  # sequential projections leave some of a
    # written here: Gram-Schmidt, the span removed, then half of c's projection
    b_perp = (b - (b @ a) * a) / (b - (b @ a) * a).norm()
    want = x - (x @ a)[..., None] * a - (x @ b_perp)[..., None] * b_perp
    want = want - 0.5 * (want @ c)[..., None] * c
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # the weight edit removes the same span
    w = torch.randn(5, 16, generator=g)
    edited = orthogonalise.project_out(w, q, -1)
    torch.testing.assert_close(edited @ q, torch.zeros(5, 2), atol=1e-5, rtol=0)


def test_panel_ablates_others_together():
    from components import directions_panel as dp

    it = dp.intervention("a", "ablate", [1, 2], 0.5)
    got = dp.together(it, ["a", "b", "c"])
    assert [(x["name"], x["mode"], x["layers"], x["coeff"]) for x in got] == [
        ("b", "ablate", [1, 2], 1.0), ("c", "ablate", [1, 2], 1.0)]  # fmt: skip
