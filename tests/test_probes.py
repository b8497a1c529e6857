"""The probe sweep job on the demo organism: every metric against scikit-learn / torch computed
here from TransformerLens's own cache (one prompt at a time, no padding), the sentiment
ground truth, the position rules, the labelled-dataset source, the cache and cancel."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from engine import saes
from engine.errors import EngineError
from organism.corpus import make_story

N = 48  # prompts per set
SEED = 3


def wait(job, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not job.status.finished and time.monotonic() < deadline:
        time.sleep(0.02)


def felt_prompts(mood: str, n: int, seed: int) -> list[str]:
    """Stories cut after " felt": the last token is the same in both sets, the mood is not
    (the next word is a feeling of the story's mood)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = make_story(rng, mood)
        out.append(s[: s.index(" felt") + len(" felt")])
    return out


@pytest.fixture(scope="module")
def sets():
    return felt_prompts("happy", N, 9001), felt_prompts("sad", N, 9002)  # seeds not in training


@pytest.fixture(scope="module")
def sweep(org, sets):
    job = org.start_job("probe_sweep", {"positive": sets[0], "negative": sets[1], "seed": SEED})
    wait(job)
    assert job.status == "done", job.error
    return job.result


@pytest.fixture(scope="module")
def direct(org, sets):
    """Last-token activations at every residual hook, one unpadded forward per prompt."""
    model = org.lm.model
    n = model.cfg.n_layers
    hooks = [f"blocks.{i}.hook_resid_pre" for i in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    x = {h: [] for h in hooks}
    with torch.no_grad():
        for text in [*sets[0], *sets[1]]:
            tokens = model.to_tokens(text)  # BOS first
            _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
            for h in hooks:
                x[h].append(cache[h][0, -1].float())
    y = np.array([1] * N + [0] * N)
    return {h: torch.stack(v).numpy() for h, v in x.items()}, y, hooks


def best_threshold(scores, labels):
    """Brute force: every midpoint (and below all), the most accurate lowest one."""
    s = sorted(set(scores.tolist()))
    best, best_acc = None, -1.0
    for t in [s[0] - 1.0] + [(a + b) / 2 for a, b in zip(s, s[1:], strict=False)]:
        acc = float(np.mean((scores > t) == labels.astype(bool)))
        if acc > best_acc:
            best, best_acc = t, acc
    return best


def test_every_metric_equals_scikit_learn_and_torch(org, sweep, direct):
    x, y, hooks = direct
    assert sweep["hooks"] == hooks and sweep["position"] == "last"
    train, test = (np.sort(i) for i in train_test_split(  # in row order
        np.arange(2 * N), test_size=0.25, random_state=SEED, stratify=y))  # fmt: skip
    assert (sweep["n_train"], sweep["n_test"]) == (len(train), len(test))
    by_hook = {r["hook"]: r for r in sweep["results"]}
    for h in hooks:
        got, xtr, xte, ytr, yte = by_hook[h], x[h][train], x[h][test], y[train], y[test]
        # the logistic-regression probe: scikit-learn directly, same split and solver
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        probe.fit(xtr, ytr)
        want = {"accuracy": probe.score(xte, yte), "train_accuracy": probe.score(xtr, ytr),
                "auroc": roc_auc_score(yte, probe.decision_function(xte))}  # fmt: skip
        assert got["logistic_probe"] == pytest.approx(want, abs=1e-4), h
        # shuffled labels: the same probe on a seeded permutation of the train labels
        shuf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        shuf.fit(xtr, np.random.default_rng(SEED).permutation(ytr))
        assert got["shuffled"]["accuracy"] == pytest.approx(shuf.score(xte, yte), abs=1e-4)
        assert got["shuffled"]["auroc"] == pytest.approx(
            roc_auc_score(yte, shuf.decision_function(xte)), abs=1e-4
        )
        # difference of means in torch, threshold chosen on the train split by brute force
        xt = torch.from_numpy(x[h])
        d = xt[train][torch.from_numpy(ytr) == 1].mean(0) - xt[train][
            torch.from_numpy(ytr) == 0
        ].mean(0)
        s = (xt @ d).numpy()
        t = best_threshold(s[train], ytr)
        assert got["diff_of_means"]["accuracy"] == pytest.approx(
            np.mean((s[test] > t) == yte), abs=1e-9
        )
        assert got["diff_of_means"]["auroc"] == pytest.approx(roc_auc_score(yte, s[test]), abs=1e-4)


def test_the_best_sae_latent_is_found_and_scored_on_the_split(org, sweep, direct):
    x, y, _ = direct
    train, test = (np.sort(i) for i in train_test_split(  # in row order
        np.arange(2 * N), test_size=0.25, random_state=SEED, stratify=y))  # fmt: skip
    reg = saes.for_model(org.lm)
    at = {i.hook_name: reg.get(i.id) for i in reg.infos()}
    n = org.lm.model.cfg.n_layers
    checked = 0
    for r in sweep["results"]:
        layer = int(r["hook"].split(".")[1])
        reads = (
            r["hook"] if r["hook"].endswith("resid_post") else f"blocks.{layer - 1}.hook_resid_post"
        )
        if reads not in at:
            assert r["sae_latent"] is None
            continue
        with torch.no_grad():
            z = at[reads].module.encode(torch.from_numpy(x[r["hook"]])).numpy()  # SAELens
        aucs = np.array([roc_auc_score(y[train], z[train, i]) if z[train, i].std() > 0 else 0.5
                         for i in range(z.shape[1])])  # fmt: skip
        i = int(np.abs(aucs - 0.5).argmax())
        sign = 1 if aucs[i] >= 0.5 else -1
        got = r["sae_latent"]
        assert got["sae"] == at[reads].info.id
        assert abs(aucs[got["index"]] - 0.5) == pytest.approx(abs(aucs[i] - 0.5), abs=1e-9)
        s = sign * z[:, got["index"]]
        t = best_threshold(s[train], y[train])
        assert got["sign"] == sign
        assert got["accuracy"] == pytest.approx(np.mean((s[test] > t) == y[test]), abs=1e-9)
        assert got["auroc"] == pytest.approx(roc_auc_score(y[test], s[test]), abs=1e-4)
        checked += 1
    assert checked >= 1 and n >= 2


def test_sentiment_is_read_from_an_early_layer_on(sweep):
    """Ground truth: the last token (" felt") is the same in both sets, so its embedding cannot
    tell the moods apart (only the position can leak); from an early layer on, a probe reads
    the mood the next word must take, on held-out prompts."""
    accs = [r["logistic_probe"]["accuracy"] for r in sweep["results"]]
    assert accs[0] < 0.8  # blocks.0.hook_resid_pre: the token " felt" and its position only
    first = next(i for i, a in enumerate(accs) if a >= 0.9)
    assert first <= 2, accs  # by the input of the third block
    assert min(accs[first:]) >= 0.9, accs  # and it stays
    assert min(r["logistic_probe"]["auroc"] for r in sweep["results"][first:]) >= 0.95
    shuffled = [r["shuffled"]["accuracy"] for r in sweep["results"]]
    assert np.mean(shuffled) < 0.75, shuffled  # the baseline stays near chance
    assert sweep["wins"]["logistic_probe"] + sweep["wins"]["diff_of_means"] >= 3


def test_a_second_run_is_the_cached_one_and_the_vectors_are_kept(org, sets, sweep):
    from engine import probe_sweep

    job = org.start_job("probe_sweep", {"positive": sets[0], "negative": sets[1], "seed": SEED})
    wait(job)
    assert job.result["cached"] is True and job.result["results"] == sweep["results"]
    h = sweep["best_hook"]
    v = probe_sweep.vector(org, sweep["sweep"], h, "logistic_probe", None)
    assert v.shape == (org.lm.model.cfg.d_model,)
    with pytest.raises(EngineError, match="no diff_of_means vector"):
        probe_sweep.vector(org, sweep["sweep"], "blocks.9.hook_resid_pre", "diff_of_means", None)
    other = org.start_job(
        "probe_sweep", {"positive": sets[0], "negative": sets[1], "seed": SEED + 1}
    )
    wait(other)
    assert other.result["cached"] is False and other.result["sweep"] != sweep["sweep"]


def test_every_token_and_match_rules(org):
    pos = ["Once upon a time, there was a happy dog named Max.", "There was a glad cat named Amy."]
    neg = ["Once upon a time, there was a sad dog named Max.", "There was a gloomy cat named Amy."]
    hooks = ["blocks.0.hook_resid_pre", "blocks.2.hook_resid_pre"]
    job = org.start_job("probe_sweep", {"positive": pos * 3, "negative": neg * 3, "hooks": hooks,
                                        "position": "every", "heldout_fraction": 0.34})  # fmt: skip
    wait(job)
    r = job.result
    assert job.status == "done", job.error
    shortest = min(len(org.lm.model.to_tokens(t)[0]) for t in pos + neg)
    assert r["positions"] == list(range(1, shortest))
    assert len(r["results"]) == len(hooks) * (shortest - 1)
    assert r["position_tokens"][0] == org.lm.model.to_str_tokens(pos[0])[1]
    job = org.start_job("probe_sweep", {"positive": pos * 3 + ["no adjective here"], "negative": neg * 3,
                                        "hooks": hooks, "position": "match", "pattern": "^ (happy|sad|glad|gloomy)$",
                                        "heldout_fraction": 0.5})  # 2 of 4 distinct texts  # fmt: skip
    wait(job)
    r = job.result
    assert job.status == "done", job.error
    assert r["n_dropped"] == 1 and r["n_positive"] == r["n_negative"] == 6
    # the matched token is the adjective itself: its embedding separates the sets
    assert r["results"][0]["diff_of_means"]["auroc"] == 1.0
    with pytest.raises(EngineError, match="no hook point"):
        org.start_job("probe_sweep", {"positive": pos, "negative": neg, "hooks": ["blocks.99.x"]})


def test_a_labelled_dataset_file_is_read_confined(org, tmp_path, monkeypatch, sets):
    import pandas as pd

    monkeypatch.setattr(org.settings, "data_dirs", [tmp_path])
    texts = sets[0][:6] + sets[1][:6]
    pd.DataFrame({"story": texts, "mood": ["happy"] * 6 + ["sad"] * 6}).to_csv(tmp_path / "m.csv")
    params = {"dataset": str(tmp_path / "m.csv"), "column": "story", "label_column": "mood",
              "hooks": ["blocks.1.hook_resid_pre"], "positive_label": "happy"}  # fmt: skip
    job = org.start_job("probe_sweep", params)
    wait(job)
    assert job.status == "done", job.error
    assert (job.result["n_positive"], job.result["n_negative"]) == (6, 6)
    with pytest.raises(EngineError):  # outside the data directories: refused at submit
        org.start_job("probe_sweep", {**params, "dataset": "/etc/passwd.csv"})
    bad = org.start_job("probe_sweep", {**params, "label_column": "nope"})
    wait(bad)
    assert bad.status == "failed" and "no column 'nope'" in bad.error


def test_cancel_stops_the_sweep(org, sets):
    job = org.start_job("probe_sweep", {"positive": sets[0], "negative": sets[1], "seed": 77,
                                        "batch_size": 1})  # fmt: skip
    org.jobs.cancel(job.id)
    wait(job)
    assert job.status == "cancelled"


def test_the_figure_bundle_snippet_recomputes_the_sweep(org, sets, sweep, tmp_path, monkeypatch):
    """The bundle's snippet runs engine/probes.py's own functions on TransformerLens / SAELens
    activations, one prompt at a time, and gets every metric of the figure again."""
    from components import bundles, probe_snippets
    from engine.launcher import REPO_ROOT
    from engine.schemas.probes import ProbeSweepParams, ProbeSweepResult
    from tests.test_bundles import assert_recomputes, run_snippet

    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    info = org.model_info().model_dump()
    ref = bundles.ModelRef.from_info(info, REPO_ROOT).ref
    params = ProbeSweepParams(positive=sets[0], negative=sets[1], seed=SEED)
    spec = probe_snippets.spec(ProbeSweepResult.model_validate(sweep), params, ref)
    assert "def fit_hook(" in spec.code and "LogisticRegression(" in spec.code  # the engine's own
    assert any(v is not None for v in np.array(spec.data["auroc"].values, dtype=object)[2].ravel())
    assert_recomputes(spec, run_snippet(spec, org, "Once upon a time", tmp_path))


def test_a_sweep_vector_is_saved_as_a_named_direction(org, sweep, direct, tmp_path, monkeypatch):
    """POST /probes/{sweep}/directions: the probe's weight over each feature's scale (the
    direction scikit-learn's probe reads), unit-normalised, with provenance and metrics; it
    is listed with the saved directions; GET /probes/{sweep} gives the result again."""
    from fastapi.testclient import TestClient

    from engine.api import create_app

    monkeypatch.setattr(org.settings, "data_dirs", [tmp_path])
    x, y, _ = direct
    h = "blocks.2.hook_resid_pre"
    train, test = (np.sort(i) for i in train_test_split(np.arange(2 * N), test_size=0.25, random_state=SEED, stratify=y))  # fmt: skip
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    probe.fit(x[h][train], y[train])
    w = probe[-1].coef_[0] / probe[0].scale_
    with TestClient(create_app(org)) as api:
        again = api.get(f"/probes/{sweep['sweep']}").json()
        assert again["results"] == sweep["results"]
        info = api.post(f"/probes/{sweep['sweep']}/directions",
                        json={"hook": h, "method": "logistic_probe", "name": "mood"}).json()  # fmt: skip
        assert info["name"] == "mood" and info["compatibility"] == "same_model"
        assert info["method"] == "logistic_probe"
        row = next(r for r in sweep["results"] if r["hook"] == h)
        assert info["metrics"]["auroc"] == row["logistic_probe"]["auroc"]
        assert info["metrics"]["shuffled_accuracy"] == row["shuffled"]["accuracy"]
        d = api.get("/directions/mood").json()
        assert d["hook"] == h and d["provenance"]["sweep"] == sweep["sweep"]
        assert np.allclose(d["vector"], w / np.linalg.norm(w), atol=1e-4)
        assert d["norm"] == pytest.approx(np.linalg.norm(w), rel=1e-4)
        # its threshold on the unit direction's projection predicts as the probe did
        u, thr = np.array(d["vector"]), d["provenance"]["threshold"]
        acc = np.mean((x[h][test] @ u > thr) == y[test].astype(bool))
        assert acc == pytest.approx(row["logistic_probe"]["accuracy"])
        dm = api.post(f"/probes/{sweep['sweep']}/directions",
                      json={"hook": h, "method": "diff_of_means"}).json()  # fmt: skip
        assert dm["name"] == f"diff_of_means-{h}-{sweep['sweep'][:6]}"
        assert {i["name"] for i in api.get("/directions").json()} >= {"mood", dm["name"]}
        assert api.post("/probes/0123456789abcdef/directions", json={"hook": h}).status_code == 404


def test_a_sweep_too_large_for_memory_is_refused(org, sets, monkeypatch):
    from engine import probe_sweep

    monkeypatch.setattr(probe_sweep, "MAX_ACTIVATION_BYTES", 10_000)
    job = org.start_job("probe_sweep", {"positive": sets[0], "negative": sets[1], "seed": 5})
    wait(job)
    assert job.status == "failed" and "GiB of activations" in job.error


def test_the_saved_probe_direction_steers_the_mood(org, sweep, tmp_path, monkeypatch):
    """The sweep's difference of means, saved as a direction and added through the engine's
    interventions (dir15b's), turns held-out openings' continuations happy or sad."""
    from engine import direction_sweep, interventions, probe_sweep
    from engine.schemas.directions import DirectionIntervention
    from engine.schemas.probes import SaveDirectionRequest
    from organism import metrics

    monkeypatch.setattr(org.settings, "data_dirs", [tmp_path])
    h = "blocks.2.hook_resid_pre"
    req = SaveDirectionRequest(hook=h, method="diff_of_means", name="mood-dm")
    probe_sweep.save_direction(org, sweep["sweep"], req)
    lm = org.lm
    model, tok = lm.model, lm.model.tokenizer
    pairs = metrics.sentiment_prompts(8, seed=5)  # held-out openings
    prompts = direction_sweep.encode(lm, [o for _, o in pairs], chat=False)
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([prompts[0]]), names_filter=h)
    scale = float(cache[h][0, 1:].norm(dim=-1).mean()) / 2  # half the residual norm

    def happy_share(coeff: float) -> float:
        it = DirectionIntervention(name="mood-dm", mode="add", coeff=coeff)
        applied = interventions.resolve(lm, [it], lm.session.directions)
        hooks = interventions.hooks(applied, "cpu", torch.float32)
        gens = direction_sweep.greedy(model, prompts, hooks, 20, tok.eos_token_id)
        counts = [metrics.sentiment_counts(tok.decode(g)) for g in gens]
        happy, sad = sum(c[0] for c in counts), sum(c[1] for c in counts)
        return happy / max(1, happy + sad)

    up, down = happy_share(scale), happy_share(-scale)
    print(
        f"happy share with the probe sweep's direction: +{scale:.2f} {up:.2f}, -{scale:.2f} {down:.2f}"
    )
    assert up >= 0.8 and down <= 0.2


def test_a_text_given_twice_stays_on_one_side_of_the_split(org):
    """Repeated prompts (the same opening given several times) are held out as whole texts: the
    split is the stratified one of the distinct texts (scikit-learn, in order of appearance),
    every row of a text on its side, so no held-out score is of a text the fit has seen."""
    happy, sad = felt_prompts("happy", 6, 31), felt_prompts("sad", 6, 32)
    assert len(set(happy + sad)) == 12
    pos, neg = happy * 3, sad * 3  # each text three times
    job = org.start_job("probe_sweep", {"positive": pos, "negative": neg, "seed": SEED,
                                        "hooks": ["blocks.1.hook_resid_pre"]})  # fmt: skip
    wait(job)
    assert job.status == "done", job.error
    r = job.result
    texts = pos + neg
    distinct = list(dict.fromkeys(texts))
    labels = np.array([1 if t in happy else 0 for t in distinct])
    g_train, g_test = train_test_split(np.arange(12), test_size=0.25, random_state=SEED,
                                       stratify=labels)  # fmt: skip
    held = {distinct[g] for g in g_test}
    assert r["n_distinct"] == 12
    assert (r["n_train"], r["n_test"]) == (3 * len(g_train), 3 * len(g_test))
    assert not held & {distinct[g] for g in g_train}
    assert r["n_test"] == sum(t in held for t in texts)
    # too few distinct texts to hold both labels out: a clear refusal, not a leaky split
    job = org.start_job("probe_sweep", {"positive": happy[:1] * 8, "negative": sad[:1] * 8,
                                        "hooks": ["blocks.1.hook_resid_pre"]})  # fmt: skip
    wait(job)
    assert job.status == "failed" and "distinct prompts" in (job.error or ""), job.error
