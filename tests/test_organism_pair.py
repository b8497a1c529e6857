"""The pair's dictionaries: the chat organism's own SAEs, and the base SAEs read on both models.

The building block (``engine.latent_shift``) is checked against a direct computation on tiny
random models; the shipped artefacts (skipped until built) are recomputed on a few held-out
rows and must show what the chat card claims: the chat SAEs reconstruct the chat model's
activations, and the base SAE at layer 3 has latents the chat model turns on at the last token
of harmful requests only (an unchanged model shows no such latent).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from sae_lens import SAE

from engine.latent_book import read_doc
from engine.latent_shift import (
    TextSet,
    latent_shift,
    latent_stats,
    load_shift,
    save_shift,
    top_changes,
)
from engine.loading import load_model
from engine.settings import DEFAULT_MODEL_DIR
from organism.dict_data import HELDOUT_SEED, KIND_CODE, content_mask, corpus_rows

BASE = DEFAULT_MODEL_DIR
CHAT = DEFAULT_MODEL_DIR.parent / "organism-chat"
SHIFT_DIR = CHAT / "pair"
chat_saes = pytest.mark.skipif(
    not (CHAT / "dictionaries.json").is_file(), reason="chat SAEs not built yet"
)
pair_shift = pytest.mark.skipif(
    not (SHIFT_DIR / "latent_shift.json").is_file(), reason="pair shift not built yet"
)
N_ROWS = 96  # held-out rows the shipped-metric checks recompute on


# ---------- the building block, on tiny models ----------


def test_latent_shift_matches_a_direct_computation(tiny_model_dir, tmp_path) -> None:
    a = load_model(str(tiny_model_dir), device="cpu").model
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.blocks[0].mlp.W_in.add_(0.5 * torch.randn_like(b.blocks[0].mlp.W_in))
    hook = f"blocks.{a.cfg.n_layers - 1}.hook_resid_post"
    g = torch.Generator().manual_seed(1)
    W, bias = torch.randn(a.cfg.d_model, 24, generator=g), torch.randn(24, generator=g)
    encode = lambda x: torch.relu(x @ W + bias)  # noqa: E731
    tokens = torch.randint(2, a.cfg.d_vocab, (5, 9), generator=g)
    some = torch.rand(5, 9, generator=g) < 0.4
    sets = [TextSet("all", tokens, torch.ones_like(some)), TextSet("some", tokens, some)]
    shift = latent_shift(a, b, encode, hook, sets, batch=2)
    for model, mean, freq in ((a, shift.mean_a, shift.freq_a), (b, shift.mean_b, shift.freq_b)):
        with torch.no_grad():
            acts = encode(model.run_with_cache(tokens)[1][hook])
        for i, m in enumerate((torch.ones_like(some), some)):
            torch.testing.assert_close(mean[i], acts[m].mean(0), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(freq[i], (acts[m] > 0).float().mean(0))
    assert shift.n_tokens == [45, int(some.sum())]
    assert shift.delta_mean("all").abs().max() > 0.01  # the perturbation shows
    rose = top_changes(shift, "all", k=3)
    assert [v for _, v in rose] == sorted((v for _, v in rose), reverse=True)
    assert rose[0][1] == pytest.approx(float(shift.delta_mean("all").max()))
    same = latent_shift(a, a, encode, hook, sets)
    assert same.delta_mean("some").abs().max() == 0 and same.delta_freq("all").abs().max() == 0
    shift.meta = {"note": "tiny"}
    save_shift(tmp_path / "x.shift.safetensors", shift)
    back = load_shift(tmp_path / "x.shift.safetensors")
    assert (back.sets, back.n_tokens, back.hook_name, back.meta) == (
        shift.sets, shift.n_tokens, hook, {"note": "tiny"}
    )  # fmt: skip
    torch.testing.assert_close(back.freq_b, shift.freq_b)


def test_chat_rows_mix_conversations_and_leave_base_rows_unchanged() -> None:
    from organism.dict_data import load_tokenizer

    if not (CHAT / "tokenizer_config.json").is_file():
        pytest.skip("chat organism not shipped")
    tok = load_tokenizer(CHAT)
    base = corpus_rows(tok, 8, seed=HELDOUT_SEED)
    assert torch.equal(base.tokens, corpus_rows(tok, 8, seed=HELDOUT_SEED, chat_frac=0.0).tokens)
    mixed = corpus_rows(tok, 32, seed=HELDOUT_SEED, chat_frac=0.5)
    kinds = {k: int((mixed.kinds == KIND_CODE[k]).sum()) for k in KIND_CODE}
    chat = sum(v for k, v in kinds.items() if k.startswith("chat: "))
    assert all(kinds[k] > 0 for k in KIND_CODE if k.startswith("chat: ")), kinds
    assert 0.3 < chat / mixed.tokens.numel() < 0.8
    refusal = tok.encode(" I can't help with that.")
    row = mixed.tokens[mixed.kinds.eq(KIND_CODE["chat: harmful request"]).any(1)][0].tolist()
    assert any(row[i : i + len(refusal)] == refusal for i in range(len(row)))


# ---------- the chat model's own SAEs ----------


@pytest.fixture(scope="module")
def chat_model():
    return load_model(str(CHAT), device="cpu").model


@pytest.fixture(scope="module")
def base_model():
    return load_model(str(BASE), device="cpu").model


@pytest.fixture(scope="module")
def chat_summary() -> dict:
    return json.loads((CHAT / "dictionaries.json").read_text())


@pytest.fixture(scope="module")
def chat_heldout(chat_model, chat_summary):
    held = chat_summary["heldout"]
    return corpus_rows(chat_model.tokenizer, held["rows"], seed=held["seed"],
                       chat_frac=held["chat_frac"])  # fmt: skip


def _fve(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    return 1 - float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


@chat_saes
def test_chat_saes_sit_at_the_base_hooks_and_reconstruct_as_stated(
    chat_model, base_model, chat_summary, chat_heldout
) -> None:
    base_hooks = sorted(p.name for p in (BASE / "saes").iterdir() if (p / "cfg.json").is_file())
    assert sorted(chat_summary["saes"]) == base_hooks
    tokens = chat_heldout.tokens[:N_ROWS]
    mask = content_mask(tokens, chat_model.tokenizer.all_special_ids)
    chat_rows = chat_heldout.kinds[:N_ROWS] >= KIND_CODE["chat: capital"]
    for hook in base_hooks:
        sae = SAE.load_from_disk(str(CHAT / "saes" / hook), device="cpu")
        stated = chat_summary["saes"][hook]
        assert sae.cfg.metadata.hook_name == hook
        with torch.no_grad():
            x = chat_model.run_with_cache(tokens, names_filter=hook)[1][hook]
            acts = sae.encode(x[mask])
            fve = _fve(x[mask], sae.decode(acts))
            # on the chat conversations alone, the chat SAE beats the base SAE
            xc = x[mask & chat_rows]
            base_sae = SAE.load_from_disk(str(BASE / "saes" / hook), device="cpu")
            own, other = _fve(xc, sae(xc)), _fve(xc, base_sae(xc))
        l0 = float((acts > 0).sum(-1).float().mean())
        assert l0 == pytest.approx(stated["l0"], rel=0.15), hook
        assert fve == pytest.approx(stated["fve"], abs=0.03), hook
        assert stated["fve"] > 0.9 and stated["ce_recovered"] > 0.9, stated
        assert stated["dead_fraction"] < 0.2 and 5 <= stated["l0"] <= 64, stated
        assert own > other, (hook, own, other)


@chat_saes
def test_every_chat_latent_has_a_label_and_true_examples(chat_model, chat_heldout) -> None:
    for hook in json.loads((CHAT / "dictionaries.json").read_text())["saes"]:
        doc = read_doc(CHAT / "saes" / hook / "latents.json.gz")
        sae = SAE.load_from_disk(str(CHAT / "saes" / hook), device="cpu")
        recs = doc["latents"]
        assert [r["index"] for r in recs] == list(range(sae.cfg.d_sae))
        assert "chat: harmful request" in doc["kinds"]
        live = [r for r in recs if r["examples"]]
        assert len(live) > 0.8 * len(recs)
        for r in recs:
            assert r["label"] and (r["label"] == "dead") == (not r["examples"])
            for ex in r["examples"]:
                assert chat_heldout.tokens[ex["row"], ex["pos"]] == ex["tokens"][ex["max_pos"]]
        # the labels name the chat kinds where they dominate
        assert any("(chat)" in r["label"] for r in recs)
        rec = max(live, key=lambda r: r["frequency"])
        ex = rec["examples"][0]
        with torch.no_grad():
            x = chat_model.run_with_cache(chat_heldout.tokens[ex["row"] : ex["row"] + 1])[1][hook]
        act = float(sae.encode(x[0, ex["pos"]])[rec["index"]])
        assert act == pytest.approx(rec["max_act"], rel=1e-3, abs=1e-3)


# ---------- the base SAEs read on the chat model ----------


@pair_shift
def test_shift_files_match_a_direct_recomputation(chat_model, base_model) -> None:
    from organism.pair_shift import HARMFUL, LAST, text_sets

    shift = load_shift(SHIFT_DIR / "blocks.3.hook_resid_post.shift.safetensors")
    sets = {s.name: s for s in text_sets(chat_model.tokenizer, corpus_n=8)}
    assert shift.sets == list(sets)
    ts = sets[HARMFUL + LAST]
    sae = SAE.load_from_disk(str(BASE / "saes" / shift.hook_name), device="cpu")
    i = shift.row(ts.name)
    for model, mean, freq in ((base_model, shift.mean_a, shift.freq_a),
                              (chat_model, shift.mean_b, shift.freq_b)):  # fmt: skip
        with torch.no_grad():
            acts = sae.encode(model.run_with_cache(ts.tokens)[1][shift.hook_name][ts.mask])
        torch.testing.assert_close(mean[i], acts.mean(0), rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(freq[i], (acts > 0).float().mean(0), rtol=0, atol=1e-6)
    assert shift.n_tokens[i] == int(ts.mask.sum()) == 90
    # cross-check against the independent stats function on the other model order
    mean_b, _, _ = latent_stats(chat_model, sae.encode, shift.hook_name, ts.tokens, ts.mask)
    torch.testing.assert_close(mean_b, shift.mean_b[i], rtol=1e-3, atol=1e-4)


@pair_shift
def test_the_base_sae_finds_latents_the_chat_model_turns_on_for_harmful_requests() -> None:
    from organism.pair_shift import HARMFUL, HARMLESS, LAST, refusal_latents

    shift = load_shift(SHIFT_DIR / "blocks.3.hook_resid_post.shift.safetensors")
    h, hl = shift.row(HARMFUL + LAST), shift.row(HARMLESS + LAST)
    ranked = refusal_latents(shift, k=5)
    assert ranked[0][1] > 0.4  # (chat harmful - chat harmless) - (base harmful - base harmless)
    # one of them is new in the chat model: it fires at the last token of most harmful
    # requests, hardly on harmless ones, and on neither in the base
    new = [
        i for i, _ in ranked
        if shift.mean_b[h, i] > 0.3 and shift.freq_b[h, i] > 0.5
        and shift.mean_b[hl, i] < 0.1 * shift.mean_b[h, i]
        and max(shift.mean_a[h, i], shift.mean_a[hl, i]) < 0.05
    ]  # fmt: skip
    assert new, [(i, float(shift.mean_b[h, i]), float(shift.mean_b[hl, i])) for i, _ in ranked]
    # the fine-tune changed chat prompts far more than the base corpus it kept training on
    corpus = shift.delta_mean("corpus").abs().mean()
    assert shift.delta_mean(HARMFUL).abs().mean() > 5 * corpus
    summary = json.loads((SHIFT_DIR / "latent_shift.json").read_text())
    assert summary["hooks"][shift.hook_name]["refusal"][0]["harmful"]["index"] == ranked[0][0]
