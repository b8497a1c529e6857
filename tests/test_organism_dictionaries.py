"""The organism's dictionaries: the building blocks on a tiny model, and the shipped artifacts.

Tests marked ``shipped`` load ``assets/organism`` (model, SAEs, transcoders, latent examples)
and check them against what ``dictionaries.json`` claims; they skip while the assets have
not been built (``python -m organism.dictionaries``). ``INTERPSCOPE_ORGANISM_DIR`` points
them at another build (a development one).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import torch
from sae_lens import SAE

from engine.latent_book import TopExamples
from organism import labels
from organism.dict_data import HELDOUT_SEED, KIND_CODE, _repeat_kinds, content_mask, corpus_rows
from organism.latent_examples import read_examples
from organism.transcoders import IN_HOOK, OUT_HOOK

ASSETS = Path(
    os.environ.get(
        "INTERPSCOPE_ORGANISM_DIR", Path(__file__).resolve().parents[1] / "assets" / "organism"
    )
)
shipped = pytest.mark.skipif(
    not (ASSETS / "saes").is_dir() or not (ASSETS / "dictionaries.json").is_file(),
    reason="organism dictionaries not built yet (python -m organism.dictionaries)",
)
N_CHECK_ROWS = 128  # held-out rows the shipped-metric checks recompute on


# ---------- building blocks (no assets needed) ----------


def test_repeat_kinds_mark_second_copy() -> None:
    span, gap = [5, 6, 7, 8], [9, 10]
    kinds = _repeat_kinds(span + gap + span)
    first, second = KIND_CODE["repeat (1st copy)"], KIND_CODE["repeat (2nd copy)"]
    assert kinds == [first] * 6 + [second] * 4


def test_topk_keeps_best_row_per_latent() -> None:
    top = TopExamples(k=2, d_latent=2, before=1, after=1)
    acts = torch.zeros(3, 4, 2)
    acts[0, 1, 0], acts[1, 3, 0], acts[2, 2, 0] = 1.0, 3.0, 2.0
    acts[1, 0, 1] = 0.5
    tokens = torch.arange(12).view(3, 4)
    top.add(acts[:2], tokens[:2], row0=0)
    top.add(acts[2:], tokens[2:], row0=2)
    assert top.values[:, 0].tolist() == [3.0, 2.0]
    assert top.rows[:, 0].tolist() == [1, 2] and top.pos[:, 0].tolist() == [3, 2]
    assert top.values[:, 1].tolist() == [0.5, 0.0]
    assert top.active.tolist() == [3, 1]
    recs = top.records([str(i) for i in range(12)], n_tokens=12)
    first = recs[0]["examples"]  # windows of 3 around each maximum, kept inside the row
    assert [ex["tokens"] for ex in first] == [[5, 6, 7], [9, 10, 11]]
    assert [ex["acts"] for ex in first] == [[0.0, 0.0, 3.0], [0.0, 2.0, 0.0]]
    assert [(ex["max_pos"], ex["row"], ex["pos"]) for ex in first] == [(2, 1, 3), (1, 2, 2)]
    assert recs[0]["frequency"] == 3 / 12 and sum(recs[0]["hist"]) == 3


def test_labels_are_deterministic_and_name_patterns() -> None:
    vocab = ["<|pad|>", "<|endoftext|>", " Mary", " John", " Paris", ".", " the", " sad"]

    def ex(tok: int, kind: str, prev: int = 6) -> dict:
        return {"tokens": [prev, tok], "max_pos": 1, "kind": KIND_CODE[kind]}

    assert labels.label_latent([], vocab) == "dead"
    assert labels.label_latent([ex(4, "fact")] * 4, vocab) == "' Paris' in capital facts"
    names = [ex(2, "IOI"), ex(3, "IOI"), ex(2, "IOI"), ex(3, "happy story")]
    assert labels.label_latent(names, vocab) == "' Mary' / ' John' in IOI sentences"
    mixed = [ex(5, "sad story", prev=7), ex(6, "IOI", prev=7), ex(2, "fact", prev=7)]
    assert labels.label_latent(mixed, vocab) == "after ' sad'"


def test_transcoder_export_loads_in_circuit_tracer_unchanged(tmp_path) -> None:
    from circuit_tracer.transcoder.single_layer_transcoder import load_relu_transcoder
    from safetensors.torch import save_file

    from organism.transcoders import BatchTopKTranscoder

    tc = BatchTopKTranscoder(d_model=8, d_transcoder=16, skip=False, out_mean=torch.zeros(8))
    with torch.no_grad():
        tc.W_enc.normal_()
        tc.b_enc.normal_()
        tc.threshold.fill_(0.3)
    save_file(tc.state_for_circuit_tracer(), str(tmp_path / "layer_0.safetensors"))
    loaded = load_relu_transcoder(
        str(tmp_path / "layer_0.safetensors"), 0, device=torch.device("cpu"), lazy_encoder=False
    )
    x = torch.randn(5, 8)
    expected = tc.jumprelu(x)
    assert (expected > 0).any() and (expected == 0).any()
    torch.testing.assert_close(loaded.encode(x), expected)
    torch.testing.assert_close(loaded.decode(expected), tc.decode(expected, x))


@pytest.mark.slow
def test_pipeline_on_a_tiny_model(tiny_model_dir, tmp_path) -> None:
    """The whole build on a 2-layer random model: every artifact exists and loads."""
    from organism.dictionaries import parse_args, run
    from organism.replacement import load_transcoder_set

    hooks = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    args = parse_args([
        "--model", str(tiny_model_dir), "--out", str(tmp_path), "--hooks", *hooks,
        "--sae-tokens", "8192", "--sae-latents", "64", "--sae-k", "4",
        "--tc-tokens", "8192", "--tc-latents", "64", "--tc-k", "4",
        "--heldout-rows", "8", "--top-k", "3",
    ])  # fmt: skip
    summary = run(args)
    for hook in hooks:
        assert SAE.load_from_disk(str(tmp_path / "saes" / hook)).cfg.d_sae == 64
        assert len(read_examples(tmp_path / "saes" / hook / "latents.json.gz")["latents"]) == 64
        assert summary["saes"][hook]["l0"] > 0
    ts = load_transcoder_set(tmp_path / "transcoders")
    assert len(ts) == 2 and ts.d_transcoder == 64
    assert len(read_examples(tmp_path / "transcoders" / "layer_1.latents.json.gz")["latents"]) == 64
    assert 0 <= summary["transcoders"]["top1_agreement"] <= 1
    assert json.loads((tmp_path / "dictionaries.json").read_text())["times_s"]["transcoders"] >= 0


# ---------- shipped artifacts ----------


@pytest.fixture(scope="module")
def organism():
    from engine.loading import load_model
    from organism.dict_data import load_tokenizer

    lm = load_model(str(ASSETS), device="cpu")
    return lm.model, load_tokenizer(ASSETS)


@pytest.fixture(scope="module")
def summary() -> dict:
    return json.loads((ASSETS / "dictionaries.json").read_text())


@pytest.fixture(scope="module")
def heldout(organism, summary):
    _, tok = organism
    return corpus_rows(tok, summary["heldout"]["rows"], seed=HELDOUT_SEED)


def sae_hooks() -> list[str]:
    if not (ASSETS / "saes").is_dir():
        return []
    return sorted(p.name for p in (ASSETS / "saes").iterdir() if (p / "cfg.json").is_file())


@shipped
def test_at_least_a_middle_and_a_late_sae() -> None:
    layers = {int(h.split(".")[1]) for h in sae_hooks()}
    assert len(layers) >= 2 and min(layers) <= 2 and max(layers) == 3


@shipped
@pytest.mark.parametrize("hook", sae_hooks())
def test_sae_encodes_engine_activations_as_stated(organism, heldout, hook: str) -> None:
    model, tok = organism
    sae = SAE.load_from_disk(str(ASSETS / "saes" / hook), device="cpu")
    stated = json.loads((ASSETS / "saes" / hook / "metrics.json").read_text())
    assert sae.cfg.metadata.hook_name == hook and sae.cfg.d_in == model.cfg.d_model
    tokens = heldout.tokens[:N_CHECK_ROWS]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=hook)
        x = cache[hook][content_mask(tokens, tok.all_special_ids)]
        acts = sae.encode(x)
        x_hat = sae.decode(acts)
    l0 = float((acts > 0).sum(-1).float().mean())
    fve = 1 - float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert l0 == pytest.approx(stated["l0"], rel=0.15)
    assert fve == pytest.approx(stated["fve"], abs=0.03)
    assert 5 <= stated["l0"] <= 64 and stated["fve"] > 0.6
    assert stated["ce_recovered"] > 0.6 and stated["dead_fraction"] < 0.5


@pytest.fixture(scope="module")
def replacement(organism):
    from organism.replacement import build_replacement_model, load_transcoder_set

    model, _ = organism
    return build_replacement_model(model, load_transcoder_set(ASSETS / "transcoders"))


@shipped
def test_transcoders_load_with_circuit_tracer(organism, replacement) -> None:
    from circuit_tracer.transcoder import TranscoderSet
    from circuit_tracer.transcoder.activation_functions import JumpReLU

    model, _ = organism
    ts = replacement.transcoders
    assert isinstance(ts, TranscoderSet) and len(ts) == model.cfg.n_layers
    assert (ts.feature_input_hook, ts.feature_output_hook) == ("mlp.hook_in", "mlp.hook_out")
    assert all(isinstance(tc.activation_function, JumpReLU) for tc in ts)


@shipped
def test_replacement_model_sees_what_the_transcoders_trained_on(
    organism, replacement, heldout
) -> None:
    model, _ = organism
    tokens = heldout.tokens[:4]
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
        rm_logits, rm_cache = replacement.run_with_cache(tokens)
    torch.testing.assert_close(rm_logits, logits)
    for layer in range(model.cfg.n_layers):
        torch.testing.assert_close(
            rm_cache[f"blocks.{layer}.mlp.hook_in"], cache[IN_HOOK.format(layer=layer)]
        )
        torch.testing.assert_close(
            rm_cache[f"blocks.{layer}.mlp.hook_out"], cache[OUT_HOOK.format(layer=layer)]
        )


@shipped
def test_transcoder_quality_as_stated(organism, replacement, heldout) -> None:
    from organism.replacement import replacement_metrics

    _, tok = organism
    stated = json.loads((ASSETS / "transcoders" / "metrics.json").read_text())
    measured = replacement_metrics(
        replacement, heldout.tokens[: N_CHECK_ROWS // 2], tok.all_special_ids
    )
    for got, want in zip(measured["layers"], stated["layers"], strict=True):
        assert got["fvu"] == pytest.approx(want["fvu"], abs=0.03)
        assert got["l0"] == pytest.approx(want["l0"], rel=0.15)
    assert measured["top1_agreement"] == pytest.approx(stated["top1_agreement"], abs=0.03)
    assert stated["top1_agreement"] > 0.7 and max(w["fvu"] for w in stated["layers"]) < 0.5


@shipped
def test_circuit_tracer_attributes_with_the_transcoders(organism, replacement) -> None:
    from circuit_tracer import attribute

    _, tok = organism
    ids = torch.tensor([tok.bos_token_id, *tok.encode("The capital of France is")])
    graph = attribute(ids, replacement, max_n_logits=2, batch_size=64, max_feature_nodes=64)
    assert graph.active_features.shape[0] > 0
    assert graph.adjacency_matrix.abs().sum() > 0


def example_files() -> list[tuple[Path, str]]:
    """(examples file, weights it belongs beside) for every shipped dictionary."""
    files = [(ASSETS / "saes" / h / "latents.json.gz", h) for h in sae_hooks()]
    tc_dir = ASSETS / "transcoders"
    if tc_dir.is_dir():
        files += [
            (p.with_suffix("").with_suffix(".latents.json.gz"), p.stem)
            for p in sorted(tc_dir.glob("layer_*.safetensors"))
        ]
    return files


@shipped
@pytest.mark.parametrize(("path", "owner"), example_files(), ids=lambda v: str(v)[-40:])
def test_examples_cover_every_latent(organism, heldout, summary, path: Path, owner: str) -> None:
    model, tok = organism
    doc = read_examples(path)
    n_latent = len(doc["latents"])
    expected = (
        SAE.load_from_disk(str(path.parent), device="cpu").cfg.d_sae
        if owner.startswith("blocks")
        else summary["transcoders"]["settings"]["d_transcoder"]
    )
    assert n_latent == expected and [r["index"] for r in doc["latents"]] == list(range(n_latent))
    for rec in doc["latents"]:
        assert rec["label"] and (rec["label"] == "dead") == (not rec["examples"])
        for ex in rec["examples"]:
            assert ex["acts"][ex["max_pos"]] == pytest.approx(max(ex["acts"]), abs=1e-3)
            assert heldout.tokens[ex["row"], ex["pos"]].item() == ex["tokens"][ex["max_pos"]]
    live = [r for r in doc["latents"] if r["examples"]]
    rec = random.Random(0).choice(live)
    ex = rec["examples"][0]
    with torch.no_grad():
        _, cache = model.run_with_cache(heldout.tokens[ex["row"] : ex["row"] + 1])
    encode = _encoder(owner, path)
    act = encode(cache[doc["hook_name"]][0, ex["pos"]])[rec["index"]]
    assert float(act) == pytest.approx(rec["max_act"], rel=1e-3, abs=1e-3)
    assert len(live) > 0.5 * n_latent, "most latents should be alive"


def _encoder(owner: str, path: Path):
    if owner.startswith("blocks"):
        return SAE.load_from_disk(str(path.parent), device="cpu").encode
    from organism.replacement import load_transcoder_set

    return load_transcoder_set(path.parent)[int(owner.split("_")[1])].encode


@shipped
def test_shipped_assets_stay_small() -> None:
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 60 * 2**20


@shipped
def test_card_section_renders(summary) -> None:
    from organism.dictionary_card import render_dictionary_section

    text = render_dictionary_section(summary)
    for hook in summary["saes"]:
        assert f"`{hook}`" in text
    assert "top-1" in text and "| 3 |" in text
