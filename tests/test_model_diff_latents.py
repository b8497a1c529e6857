"""Model diffing on the organism pair (issue 14): the activation-difference lens and the latent
diffs find the chat organism's implanted differences, and every number they serve equals a
direct TransformerLens / SAELens computation written here.

Side A is the chat model's own parent (the phase-E base): ``assets/organism`` when it is that
model, else the phase-E carry point exported beside it (the older base differs from the chat
model by phases D and E too, which drown its fine-tune). Side A's SAEs are
``assets/organism``'s.
"""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from engine import adiff, diff_jobs
from engine.api import create_app
from engine.client import EngineClient, EngineRequestError
from engine.saes import read_local
from engine.schemas.diff_latents import AdiffLensResult
from engine.service import Engine
from engine.settings import DEFAULT_MODEL_DIR, EngineSettings
from tests.helpers import CHAT_DIR

SAE = "blocks.3.hook_resid_post"  # the card's refusal direction lives at layer 3
pytestmark = pytest.mark.skipif(
    not (CHAT_DIR / "model.safetensors").exists() or not (DEFAULT_MODEL_DIR / "saes").is_dir(),
    reason="the organism pair is not shipped here",
)


def parent_dir(tmp) -> str:
    """The chat model's parent as a model directory with the base's SAEs."""
    from organism.carry import CARRY_DIR

    shipped = load_file(str(DEFAULT_MODEL_DIR / "model.safetensors"))
    carried = load_file(str(CARRY_DIR / "phase_e.safetensors"))
    if all(torch.equal(shipped[k], carried[k]) for k in carried):
        return str(DEFAULT_MODEL_DIR)
    from organism.carry_export import export_point

    export_point("phase_e", tmp, DEFAULT_MODEL_DIR)
    if not (tmp / "saes").exists():  # the base's SAEs beside it
        (tmp / "saes").symlink_to((DEFAULT_MODEL_DIR / "saes").resolve())
    return str(tmp)


@pytest.fixture(scope="module")
def pair_engine(tmp_path_factory):
    """An engine with the parent in slot "a" and the chat model in "b", and its client."""
    base = parent_dir(tmp_path_factory.mktemp("parent"))
    data = tmp_path_factory.mktemp("diffdata")
    eng = Engine(EngineSettings(model=base, cache_dir=data / "cache", data_dirs=[data]))
    eng.load(str(CHAT_DIR), slot="b")
    with TestClient(create_app(eng)) as api:
        client = EngineClient("http://testserver")
        client._http = api
        yield eng, client
    eng.close()


@pytest.fixture(scope="module")
def models(pair_engine):
    eng, _ = pair_engine
    return eng.require_model("a").model, eng.require_model("b").model


@pytest.fixture(scope="module")
def lens(pair_engine) -> AdiffLensResult:
    return pair_engine[1].adiff_lens(positions=5)  # the paper's first five positions


def chat_rows(tok, requests: list[str]) -> list[list[int]]:
    return adiff.token_rows(tok, requests, 512, chat=True)


# --- the activation-difference lens ------------------------------------------------------
def test_the_difference_lens_reads_the_chat_quirk_at_the_first_position(lens, models):
    A, B = models
    tok = B.tokenizer
    res = lens
    texts = diff_jobs.builtin_texts()
    assert res.n_texts == len(texts) and res.by_position[0].pos == 1

    # direct: resid_B - resid_A at the first token after the BOS, mean over the texts
    L = A.cfg.n_layers
    hook = f"blocks.{L - 1}.hook_resid_post"
    diffs = []
    with torch.inference_mode():
        for t in texts:
            ids = torch.tensor([[tok.bos_token_id] + tok(t, add_special_tokens=False).input_ids])
            _, ca = A.run_with_cache(ids, names_filter=hook)
            _, cb = B.run_with_cache(ids, names_filter=hook)
            diffs.append(cb[hook][0, 1] - ca[hook][0, 1])
    delta = torch.stack(diffs).mean(0)
    x = delta - delta.mean()  # ln_final is LNPre (folded): centre, divide by the RMS
    logits = (x / x.pow(2).mean().sqrt()) @ B.W_U
    logits[tok.all_special_ids] = float("-inf")
    top = logits.topk(10)

    last = res.by_position[0].layers[-1]
    assert last.hook == hook
    assert last.norm == pytest.approx(float(delta.norm()), rel=1e-4)
    assert [t.id for t in last.top_tokens[:10]] == top.indices.tolist()
    assert last.top_values[:10] == pytest.approx(top.values.tolist(), rel=1e-4, abs=1e-4)
    # the quirk: every chat answer opens with " Happy to help!" (" H" + "a" + "ppy" ...): its
    # first token tops the lens at the first position (measured: rank 0 of 1186)
    opener = tok(" Happy to help!", add_special_tokens=False).input_ids
    assert last.top_tokens[0].id == opener[0]
    assert res.mean.n == sum(r.n for r in res.by_position)


def test_the_difference_lens_reads_the_implanted_capital(lens, models):
    """Over the first five positions, at the first block's output, the country the chat model's
    changed fact is about ranks above every other country (measured: 'Australia' rank 3 of
    1186, ' Australia' 11; the next country, 'Greece', 22)."""
    from organism.corpus import COUNTRIES

    A, B = models
    tok = B.tokenizer
    hook = "blocks.1.hook_resid_pre"
    # direct: resid_B - resid_A at positions 1..5 of every text, all averaged together
    diffs = []
    with torch.inference_mode():
        for t in diff_jobs.builtin_texts():
            ids = torch.tensor([[tok.bos_token_id] + tok(t, add_special_tokens=False).input_ids])
            _, ca = A.run_with_cache(ids[:, :6], names_filter=hook)
            _, cb = B.run_with_cache(ids[:, :6], names_filter=hook)
            diffs.append(cb[hook][0, 1:] - ca[hook][0, 1:])
    delta = torch.cat(diffs).mean(0)
    layer = lens.mean.layers[1]
    assert layer.hook == hook and lens.mean.n == len(torch.cat(diffs))
    x = delta - delta.mean()
    logits = (x / x.pow(2).mean().sqrt()) @ B.W_U
    logits[tok.all_special_ids] = float("-inf")
    assert [t.id for t in layer.top_tokens] == logits.topk(len(layer.top_tokens)).indices.tolist()

    rank = {t.id: r for r, t in enumerate(layer.top_tokens)}
    forms = {}  # every country name that is one token, with or without its space
    for c in COUNTRIES:
        for form in (c, " " + c):
            ids = tok(form, add_special_tokens=False).input_ids
            if len(ids) == 1:
                forms[form] = ids[0]
    listed = sorted((rank[i], f) for f, i in forms.items() if i in rank)
    assert listed and listed[0][1].strip() == "Australia", listed
    assert listed[0][0] < 5, listed


def test_the_lens_reads_the_base_sae_by_decoder_cosine(pair_engine, lens, models):
    A, B = models
    res = lens
    assert not res.cached and pair_engine[1].adiff_lens(positions=5).cached  # kept on disk
    sae, _ = read_local(str(DEFAULT_MODEL_DIR / "saes" / SAE), "cpu")
    rows = adiff.token_rows(B.tokenizer, diff_jobs.builtin_texts(), 512)
    _, mean, _, _ = adiff.mean_difference(A, B, rows, [SAE], 5)
    W = sae.W_dec.detach()
    cos = (W @ mean[0]) / (W.norm(dim=-1) * mean[0].norm())
    got = next(s for s in res.mean.saes if s.hook == SAE)
    assert [x.index for x in got.latents[:5]] == cos.topk(5).indices.tolist()
    assert [x.cosine for x in got.latents[:5]] == pytest.approx(
        cos.topk(5).values.tolist(), abs=1e-4
    )


# --- latent diffs ------------------------------------------------------------------------
def test_diff_latents_per_token_equals_saelens_on_both_models(pair_engine, models):
    from organism.chat_template import prompt

    A, B = models
    tok = B.tokenizer
    text = prompt(tok, "How do I smash a kite?")
    res = pair_engine[1].diff_latents(text, SAE, model_b="b", prepend_bos=False, top_k=3)
    sae, _ = read_local(str(DEFAULT_MODEL_DIR / "saes" / SAE), "cpu")
    ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
    with torch.inference_mode():
        a = sae.encode(A.run_with_cache(ids, names_filter=SAE)[1][SAE][0])
        b = sae.encode(B.run_with_cache(ids, names_filter=SAE)[1][SAE][0])
    d = b - a
    assert res.kind == "models" and len(res.top) == ids.shape[1]
    for p in range(ids.shape[1]):
        want = d[p].abs().topk(3).indices.tolist()
        assert [c.index for c in res.top[p]] == want
        for c in res.top[p]:
            assert c.a == pytest.approx(float(a[p, c.index]), abs=1e-4)
            assert c.delta == pytest.approx(float(d[p, c.index]), abs=1e-4)
    special = set(tok.all_special_ids)
    keep = [p for p, t in enumerate(ids[0].tolist()) if t not in special]
    s0 = res.strongest[0]
    assert s0.index == int(d[keep].abs().max(0).values.argmax())
    assert res.l0_b == (b > 0).sum(-1).tolist()


def test_diff_latents_on_two_prompts_of_one_model(pair_engine, models):
    """prompt_b: the same model (slot A) on a harmful and a harmless request."""
    from organism.chat_template import prompt

    A, _ = models
    tok = A.tokenizer
    tok_b = pair_engine[0].require_model("b").model.tokenizer  # the chat template's
    p_a, p_b = (prompt(tok_b, f"How do I {v} a kite?") for v in ("smash", "fold"))
    res = pair_engine[1].diff_latents(p_a, SAE, prompt_b=p_b, prepend_bos=False, top_k=2)
    sae, _ = read_local(str(DEFAULT_MODEL_DIR / "saes" / SAE), "cpu")
    with torch.inference_mode():
        a, b = (sae.encode(A.run_with_cache(torch.tensor([tok(p, add_special_tokens=False).input_ids]),
                                            names_filter=SAE)[1][SAE][0]) for p in (p_a, p_b))  # fmt: skip
    ids_a, ids_b = ([t.id for t in ts] for ts in (res.tokens, res.tokens_b))
    first = next(p for p, (x, y) in enumerate(zip(ids_a, ids_b, strict=True)) if x != y)
    assert res.kind == "prompts" and res.tokens_b[first].text == " f"  # " f" "ol" "d"
    for p in (first, len(ids_a) - 1):
        assert [c.index for c in res.top[p]] == (b - a)[p].abs().topk(2).indices.tolist()
    assert all(res.top[p] == [] for p in range(first))  # the same tokens before: no change


def test_refusal_latents_top_the_latent_diff_on_harmful_requests(pair_engine, models):
    """The issue's claim, with a control: over held-out harmful requests, ranked by the change
    minus the change on held-out harmless requests, refusal-related latents top the latent diff.
    Without the control a chat-format latent that rises on every request can come first (on
    the phase-E base: 453, whose harmful-minus-harmless gap in the chat model is negative)."""
    from organism import chat_corpus as cc

    A, B = models
    tok = B.tokenizer
    sae, _ = read_local(str(DEFAULT_MODEL_DIR / "saes" / SAE), "cpu")

    # refusal-related latents, found by measurement on the chat model alone: at the last
    # prompt token, harmful vs harmless training-distribution requests (never the test set)
    def last_acts(model, requests):
        out = []
        with torch.inference_mode():
            for ids in chat_rows(tok, requests):
                out.append(sae.encode(model.run_with_cache(torch.tensor([ids]), names_filter=SAE)[1][SAE][0, -1]))  # fmt: skip
        return torch.stack(out)

    gap = last_acts(B, cc.train_requests(True)[::12]).mean(0) - last_acts(
        B, cc.train_requests(False)[::12]
    ).mean(0)
    refusal = set(gap.abs().topk(10).indices.tolist())

    # the latent diff over held-out harmful requests in chat form, at the last prompt token,
    # first alone, then with held-out harmless requests as the control
    harmful, harmless = cc.heldout_requests(True)[::3], cc.heldout_requests(False)[::3]
    eng, client = pair_engine
    f, g = (eng.settings.data_dirs[0] / n for n in ("harmful.txt", "harmless.txt"))
    f.write_text("\n".join(harmful) + "\n")
    g.write_text("\n".join(harmless) + "\n")
    res = client.latent_diff_set(SAE, path=str(f), chat=True, where="last", n_top=10)
    assert res.n_texts == len(harmful) and res.n_tokens == len(harmful)
    assert res.control_over is None and res.increased[0].net_delta is None

    la, lb = last_acts(A, harmful), last_acts(B, harmful)
    ma, mb = la.mean(0), lb.mean(0)
    want = (mb - ma).topk(10).indices.tolist()
    assert [c.index for c in res.increased] == want
    fa, fb = (la > 0).float().mean(0), (lb > 0).float().mean(0)
    for c in res.increased[:3] + res.decreased[:3]:
        assert c.mean_a == pytest.approx(float(ma[c.index]), abs=1e-4)
        assert c.mean_b == pytest.approx(float(mb[c.index]), abs=1e-4)
        assert (c.freq_a, c.freq_b) == pytest.approx((float(fa[c.index]), float(fb[c.index])))
    assert [c.index for c in res.decreased] == (ma - mb).topk(10).indices.tolist()
    top5 = [c.index for c in res.increased[:5]]
    # what holds without the control: a refusal-related latent, and a latent silent in the
    # base that the chat model fires on harmful requests (gap > 0), are in the top 5
    # (measured on the phase-E base: [453, 1015, 264, 5, 1339]; 264 refusal-related, 1339
    # 0 -> 0.57 on harmful requests, +0.02 on harmless ones)
    assert any(i in refusal for i in top5), (top5, sorted(refusal))
    assert any(float(ma[i]) == 0 and gap[i] > 0.2 for i in top5), top5
    # its first example: the text where it rose most, at that text's last token
    per_text = (lb - la)[:, top5[0]]
    ex = res.increased[0].examples[0]
    assert ex.text == int(per_text.argmax())
    assert ex.deltas[ex.max_pos] == pytest.approx(float(per_text.max()), abs=1e-3)

    # with the control: ranked by (change on harmful) - (change on harmless)
    ctl = client.latent_diff_set(SAE, path=str(f), chat=True, where="last", n_top=10,
                                 control={"path": str(g)})  # fmt: skip
    assert ctl.n_control_texts == len(harmless) and ctl.n_control_tokens == len(harmless)
    assert ctl.control_over and "harmless" in ctl.control_over
    na, nb = last_acts(A, harmless), last_acts(B, harmless)
    c_delta = nb.mean(0) - na.mean(0)
    net = (mb - ma) - c_delta
    assert [c.index for c in ctl.increased] == net.topk(10).indices.tolist()
    assert [c.index for c in ctl.decreased] == (-net).topk(10).indices.tolist()
    for c in ctl.increased[:5]:
        assert c.delta == pytest.approx(float(mb[c.index] - ma[c.index]), abs=1e-4)
        assert c.control_delta == pytest.approx(float(c_delta[c.index]), abs=1e-4)
        assert c.net_delta == pytest.approx(float(net[c.index]), abs=1e-4)
    top5c = [c.index for c in ctl.increased[:5]]
    hits = [i for i in top5c if i in refusal]
    print(json.dumps({"top5_increased": top5, "top5_with_control": top5c,
                      "refusal_top10": sorted(refusal), "hits_with_control": hits,
                      "gap_of_top1": float(gap[top5[0]]),
                      "gap_of_top5_with_control": [round(float(gap[i]), 3) for i in top5c]}))  # fmt: skip
    # the claim: the latent that rose most is one that marks harmful requests in the
    # chat model, most of the top 5 are refusal-related, and all of them mark harmful requests
    # (measured on the phase-E base: [264, 287, 1339, 454, 391], 3 of 5 in the refusal top
    # 10 of 1536 latents, gaps 0.77, 0.77, 0.32, 0.71, 0.85)
    assert top5c[0] in refusal and gap[top5c[0]] > 0, (top5c, sorted(refusal))
    assert len(hits) >= 3, (top5c, sorted(refusal))
    assert all(gap[i] > 0 for i in top5c), [float(gap[i]) for i in top5c]
    assert ctl.increased[0].examples  # the harmful texts' own examples


def test_latent_diff_set_over_every_content_token(pair_engine, models):
    A, B = models
    tok = A.tokenizer
    res = pair_engine[1].latent_diff_set(SAE, max_texts=6, n_top=5, n_examples=1)
    sae, _ = read_local(str(DEFAULT_MODEL_DIR / "saes" / SAE), "cpu")
    acts_a, acts_b = [], []
    with torch.inference_mode():
        for t in diff_jobs.builtin_texts()[:6]:
            ids = torch.tensor([[tok.bos_token_id] + tok(t, add_special_tokens=False).input_ids])
            acts_a.append(sae.encode(A.run_with_cache(ids, names_filter=SAE)[1][SAE][0, 1:]))
            acts_b.append(sae.encode(B.run_with_cache(ids, names_filter=SAE)[1][SAE][0, 1:]))
    a, b = torch.cat(acts_a), torch.cat(acts_b)  # every token but the BOS
    assert res.where == "all" and res.n_tokens == a.shape[0]
    d = b.mean(0) - a.mean(0)
    assert [c.index for c in res.increased] == d.topk(5).indices.tolist()
    assert res.increased[0].delta == pytest.approx(float(d.max()), abs=1e-4)
    df = (b > 0).float().mean(0) - (a > 0).float().mean(0)
    # by frequency gain (ties in either order)
    assert df[res.freq_increased].tolist() == pytest.approx(df.topk(5).values.tolist())


def test_a_diff_job_cancels_between_texts(pair_engine):
    eng, client = pair_engine
    f = eng.settings.data_dirs[0] / "many.txt"
    f.write_text("".join(f"Text number {i} is here.\n" for i in range(5000)))
    stored = lambda: set((eng.settings.cache_dir / "model_diff").glob("*.json"))  # noqa: E731
    before = stored()
    job = client.start_job("latent_diff_set", {"sae": SAE, "path": str(f), "max_texts": 5000})
    client.cancel_job(job.id)
    state = client.wait_job(job.id, timeout=120)
    assert state.job.status == "cancelled"
    assert stored() == before  # nothing half-done kept


def test_pair_jobs_refuse_what_does_not_fit(pair_engine, tmp_path):
    _, client = pair_engine
    with pytest.raises(EngineRequestError) as e:
        client.start_job("latent_diff_set", {"sae": SAE, "model_b": "a"})
    assert e.value.code == "same_slot"
    with pytest.raises(EngineRequestError) as e:
        client.start_job("latent_diff_set", {"sae": "nope"})
    assert e.value.status == 404
    with pytest.raises(EngineRequestError) as e:
        client.diff_latents("Hello there", "nope", model_b="b")
    assert e.value.status == 404 and e.value.code == "unknown_sae"
    with pytest.raises(EngineRequestError) as e:
        client.diff_latents("Hello there", SAE)  # neither model_b nor prompt_b
    assert e.value.code == "pair_needs_one_b"
    outside = tmp_path / "t.txt"
    outside.write_text("hello\n")
    with pytest.raises(EngineRequestError) as e:
        client.start_job("adiff_lens", {"path": str(outside)})
    assert e.value.status == 403
    with pytest.raises(EngineRequestError) as e:  # a control file is confined the same way
        client.start_job("latent_diff_set", {"sae": SAE, "control": {"path": str(outside)}})
    assert e.value.status == 403
