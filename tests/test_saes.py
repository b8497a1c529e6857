"""SAE latent analyses on the demo organism against SAELens and circuit-tracer directly.

Expectations come from the shipped SAEs and model at test time (no hard-coded latents), so
the tests hold for any retrained organism.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from engine import saes
from engine.schemas.analyses import AnalysisRequest
from engine.service import Engine

ORGANISM = Path(__file__).resolve().parents[1] / "assets" / "organism"
HOOK = "blocks.1.hook_resid_post"
PROMPT = "Once upon a time, there was a sad dog named Max. The capital of France is Paris."
pytestmark = pytest.mark.skipif(
    not (ORGANISM / "saes" / HOOK).is_dir(), reason="organism SAEs not shipped"
)


def analyze(eng: Engine, name: str, prompt: str = PROMPT, **params) -> dict:
    return json.loads(eng.analyze(name, AnalysisRequest(prompt=prompt, params=params)))


def wait(job) -> None:
    deadline = time.monotonic() + 120
    while not job.status.finished and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def direct(org):
    """SAELens encode of TransformerLens's cached activation, computed outside the engine."""
    sae = SAE.load_from_disk(ORGANISM / "saes" / HOOK)
    model = org.lm.model
    ids, _ = org.tokenize(PROMPT)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids]))
        acts = sae.encode(cache[HOOK][0])
    return sae, acts


def test_latents_equal_saelens_encode(org, direct):
    _, acts = direct
    res = analyze(org, "sae_latents", sae=HOOK, top_k=5)
    chosen = int(acts[1:].amax(0).argmax())
    res_one = analyze(org, "sae_latents", sae=HOOK, top_k=5, latent=chosen)
    torch.testing.assert_close(torch.tensor(res_one["latent_acts"]), acts[:, chosen])
    for pos, row in enumerate(res["top"]):
        vals, idx = acts[pos].topk(5)
        want = [(int(i), float(v)) for i, v in zip(idx, vals, strict=True) if v > 0]
        assert [r["index"] for r in row] == [i for i, _ in want]
        torch.testing.assert_close(
            torch.tensor([r["act"] for r in row]), torch.tensor([v for _, v in want])
        )
    assert res["l0"] == (acts > 0).sum(-1).tolist()
    best = res["strongest"][0]
    assert best["index"] == int(acts[1:].amax(0).argmax())  # BOS is left out
    assert best["label"] == saes.for_model(org.lm).get(HOOK).book.label(best["index"])


def test_latent_detail_logit_effect_and_examples(org, direct):
    sae, acts = direct
    i = int(acts[1:].amax(0).argmax())
    res = analyze(org, "latent_detail", sae=HOOK, index=i, n_logits=5)
    torch.testing.assert_close(torch.tensor(res["acts"]), acts[:, i])
    effect = sae.W_dec[i].detach() @ org.lm.model.W_U
    assert [t["id"] for t in res["top_logits"]] == effect.topk(5).indices.tolist()
    assert [t["id"] for t in res["bottom_logits"]] == (-effect).topk(5).indices.tolist()
    record = saes.for_model(org.lm).get(HOOK).book.record(i)
    assert res["label"] == record["label"] and res["label_origin"] == "shipped"
    assert len(res["examples"]) == len(record["examples"])
    in_examples = sum(a > 0 for ex in record["examples"] for a in ex["acts"])
    if "hist" in record:  # a book with every token's histogram (organism builds since issue 13)
        assert res["histogram"]["counts"] == record["hist"]
        assert sum(record["hist"]) >= in_examples > 0  # the examples are among its activations
    else:  # else the histogram of the example windows
        assert sum(res["histogram"]["counts"]) == in_examples
    assert res["neuronpedia"] is None  # the organism is not on Neuronpedia


def test_transcoder_latent_detail_matches_circuit_tracer(org):
    from engine.graphs.replacement import load_transcoder_set

    tc = load_transcoder_set(ORGANISM / "transcoders")[2]
    ids, _ = org.tokenize(PROMPT)
    with torch.no_grad():
        _, cache = org.lm.model.run_with_cache(torch.tensor([ids]))
        acts = tc.encode(cache["blocks.2.ln2.hook_normalized"][0])
    i = int(acts[1:].amax(0).argmax())
    res = analyze(org, "latent_detail", source="transcoder", layer=2, index=i)
    torch.testing.assert_close(torch.tensor(res["acts"]), acts[:, i])
    assert res["writes"] == "blocks.2.hook_mlp_out" and res["key"] == "transcoder:2"
    assert res["label"]  # shipped beside the transcoder


def test_latent_search_by_token_and_label(org):
    res = analyze(org, "latent_search", sae=HOOK, query=" Paris", by="token", limit=5)
    assert res["token"]["text"] == " Paris" and res["hits"]
    book = saes.for_model(org.lm).get(HOOK).book
    tid = res["token"]["id"]
    top = book.record(res["hits"][0]["index"])
    fired = sum(
        a
        for ex in top["examples"]
        for t, a in zip(ex["tokens"], ex["acts"], strict=True)
        if t == tid
    )
    assert fired > 0
    label = res["hits"][0]["label"].split()[0]
    by_label = analyze(org, "latent_search", sae=HOOK, query=label, limit=50)
    assert by_label["hits"] and all(label.lower() in h["label"].lower() for h in by_label["hits"])


def test_capabilities_say_saes(org, engine):
    assert org.capabilities().features["saes"].available
    tiny = engine.capabilities().features["saes"]
    assert not tiny.available and "no SAEs are attached" in tiny.reason


def test_bad_requests_are_clear(org):
    from engine.errors import EngineError

    with pytest.raises(EngineError) as e:
        analyze(org, "sae_latents", sae="blocks.9.hook_resid_post")
    assert e.value.status == 404 and "attached" in e.value.message
    with pytest.raises(EngineError) as e:
        analyze(org, "latent_detail", sae=HOOK, index=10**6)
    assert e.value.code == "latent_out_of_range"


def test_attach_local_and_offline_pretrained(org, monkeypatch):
    reg = saes.for_model(org.lm)
    info = reg.attach_local(str(ORGANISM / "saes" / HOOK))
    assert info.origin == "local" and info.d_sae == reg.get(HOOK).d_latent
    monkeypatch.setattr(saes, "hub_reachable", lambda timeout=0: False)
    monkeypatch.setattr(saes, "_pretrained_cached", lambda r, s: False)
    from engine.errors import EngineError

    with pytest.raises(EngineError) as e:
        reg.attach_pretrained("gpt2-small-res-jb", "blocks.0.hook_resid_pre")
    assert e.value.status == 503 and "not in the local Hugging Face cache" in e.value.message


def test_examples_job_over_a_text_file(org, tmp_path, monkeypatch):
    from organism.corpus import sample_texts

    monkeypatch.setattr(org.settings, "data_dirs", [tmp_path])  # readable (engine/paths.py)
    texts = sample_texts(12, seed=7)
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(texts))
    job = org.start_job("latent_examples", {"sae": HOOK, "path": str(path), "top_k": 3})
    wait(job)
    assert job.status == "done", job.error
    name = job.result["examples"]
    d = saes.for_model(org.lm).get(HOOK)
    # ground truth: each text's max activation of the strongest latent, directly
    model, enc = org.lm.model, d.module
    maxima = []
    for t in texts:
        ids, _ = org.tokenize(t)
        with torch.no_grad():
            _, cache = model.run_with_cache(torch.tensor([ids]))
            maxima.append(enc.encode(cache[HOOK][0])[1:])
    best = torch.stack([m.amax(0) for m in maxima])  # [text, latent]
    i = int(best.amax(0).argmax())
    res = analyze(org, "latent_detail", sae=HOOK, index=i, examples=name)
    got = [max(ex["acts"]) for ex in res["examples"]]
    want = best[:, i].sort(descending=True).values[:3].tolist()
    assert got == pytest.approx([round(w, 3) for w in want], abs=2e-3)
    assert res["label_origin"] == "computed" and sum(res["histogram"]["counts"]) > 0
    again = org.start_job("latent_examples", {"sae": HOOK, "path": str(path), "top_k": 3})
    wait(again)
    assert again.result["cached"] is True


def test_examples_job_over_a_dataset_equals_the_same_texts_in_a_file(org, tmp_path, monkeypatch):
    import datasets

    from engine import latent_examples
    from engine.errors import EngineError
    from organism.corpus import sample_texts

    monkeypatch.setattr(org.settings, "data_dirs", [tmp_path])
    texts = sample_texts(6, seed=11)
    (tmp_path / "t.txt").write_text("\n".join(texts))
    datasets.Dataset.from_dict({"story": texts}).save_to_disk(str(tmp_path / "ds"))
    jobs = [
        org.start_job("latent_examples", {"sae": HOOK, "path": str(tmp_path / "t.txt")}),
        org.start_job(
            "latent_examples", {"sae": HOOK, "dataset": str(tmp_path / "ds"), "column": "story"}
        ),
    ]
    docs = []
    d = saes.for_model(org.lm).get(HOOK)
    for job in jobs:
        wait(job)
        assert job.status == "done", job.error
        path = latent_examples._store(org, d, job.result["examples"])
        docs.append(json.loads(gzip.decompress(path.read_bytes())))
    assert docs[0]["n_rows"] == docs[1]["n_rows"] == len(texts)
    assert docs[0]["latents"] == docs[1]["latents"]
    with pytest.raises(EngineError, match="no column 'text'"):  # refused at submit
        org.start_job("latent_examples", {"sae": HOOK, "dataset": str(tmp_path / "ds")})


def test_loading_another_model_frees_the_old_one_and_its_saes(tiny_model_dir, tmp_path):
    """Per-model state (the SAE registry, the transcoders, the graph's replacement model,
    steering's cached vectors and baselines) goes with the model: after loading another model nothing keeps the old weights alive."""
    import gc
    import weakref

    from engine import steering
    from engine.graphs.replacement import replacement_model
    from engine.schemas.steering import SteeringVector, SteerRequest
    from engine.settings import DEFAULT_MODEL_DIR, EngineSettings

    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("the demo organism is not shipped here")
    eng = Engine(EngineSettings(model=str(DEFAULT_MODEL_DIR), cache_dir=tmp_path))
    try:
        analyze(eng, "sae_latents", "Once upon a time", sae=HOOK)
        analyze(eng, "latent_detail", "Once upon a time", source="transcoder", layer=1, index=3)
        rm = replacement_model(eng.lm)
        tc = saes.for_model(eng.lm).transcoder(1).module
        assert tc is rm.transcoders[1]  # loaded once, shared by latent panels and graphs
        vec = SteeringVector(kind="contrastive", positive=["happy"], negative=["sad"],
                             hook="blocks.0.hook_resid_post", coefficient=1.0)  # fmt: skip
        req = SteerRequest(prompt="Once upon a time", vectors=[vec], max_new_tokens=4)
        ids, _ = eng.tokenize(req.prompt)
        list(steering.generate_pair(eng.lm, ids, steering.resolve(eng.lm, req.vectors), req))
        session = eng.lm.session
        assert len(session.contrastive) == 1 and len(session.baselines) == 1
        objects = (eng.lm, eng.lm.model, session, saes.for_model(eng.lm), rm, tc)
        old = [weakref.ref(x) for x in objects]
        del rm, tc, objects, session
        eng.load(str(tiny_model_dir))
        gc.collect()
        assert [ref() for ref in old] == [None] * len(old)
        assert saes.for_model(eng.lm).lm.model is eng.lm.model
    finally:
        eng.close()
