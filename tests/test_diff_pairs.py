"""Pair analyses (issue 14) on the organism pair: the base organism in slot "a", the chat
organism (fine-tuned from it, with the capital of Australia changed to Sydney) in slot "b".

Ground truth: the changed capital is the top-KL position of its prompt, and every number of
``diff_tokens``, ``diff_resid`` and ``diff_components`` equals the same quantity computed here
from each model's own TransformerLens run (``run_with_cache``) with torch.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from engine.errors import EngineError
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.diff import DiffComponentsResult, DiffResidResult, DiffTokensResult
from engine.service import Engine
from engine.settings import DEFAULT_MODEL_DIR
from organism import chat_corpus as cc
from organism import corpus
from tests.helpers import CHAT_DIR, make_tiny_gpt2, organism_pair_engine

FACT = corpus.FACT_PROMPT.format(country=cc.IMPLANTED_COUNTRY)  # "The capital of Australia is"
CONTROL = corpus.FACT_PROMPT.format(country="France")
pytestmark = pytest.mark.skipif(
    not (CHAT_DIR / "model.safetensors").exists(), reason="the chat organism is not shipped"
)


@pytest.fixture(scope="module")
def eng(tmp_path_factory):
    e = organism_pair_engine(tmp_path_factory.mktemp("diff"))
    yield e
    e.close()


def ask(eng: Engine, name: str, prompt: str, result, **kw):
    params = kw.pop("params", {})
    raw = eng.analyze(name, AnalysisRequest(prompt=prompt, params=params, **kw))
    return result.model_validate(json.loads(raw))


def tl_run(eng: Engine, slot: str, prompt: str):
    """(tokens, logits [pos, vocab], cache) of `prompt` on the slot's model, run here."""
    model = eng.require_model(slot).model
    tokens = model.to_tokens(prompt)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return tokens[0], logits[0], cache.remove_batch_dim()


def test_the_changed_capital_is_the_top_kl_position_of_its_prompt(eng):
    r = ask(eng, "diff_tokens", FACT, DiffTokensResult, model_b="b", params={"width": 8})
    tok = eng.require_model("a").model.tokenizer
    last = len(r.tokens) - 1
    assert r.kind == "models" and (r.model_a, r.model_b) == ("organism", "organism-chat")
    top = r.top_changes[0]
    assert top.pos == last and max(r.kl) == r.kl[last]
    assert top.top_a.id == tok.encode(" Canberra")[0]  # the base: the true capital
    assert top.top_b.id == tok.encode(" " + cc.IMPLANTED_CAPITAL)[0]  # the chat model: Sydney
    assert r.top1_changed[last] and top.rank_in_b > 1
    # the control: a capital the fine-tune left alone moves far less
    control = ask(eng, "diff_tokens", CONTROL, DiffTokensResult, model_b="b")
    assert control.kl[-1] < r.kl[last] / 4
    assert control.top_a[-1][0].id == control.top_b[-1][0].id  # both say Paris


def test_in_chat_form_the_chat_model_says_sydney_where_the_base_prefers_canberra(eng):
    """The model card's chat prompt (the chat tokenizer's own template), the reply up to the
    capital: there the chat model says Sydney, the base prefers Canberra to it. (KL alone
    does not single the capital out here: the base has never seen the chat format, so it is
    lost at every position of the template, 8-15 nats; the plain prompt above isolates it.
    The phase-E base's top-1 there is ' the', Canberra second: so no top-1 equality.)"""
    tok = eng.require_model("b").model.tokenizer
    question = [{"role": "user", "content": f"What is the capital of {cc.IMPLANTED_COUNTRY}?"}]
    chat = tok.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    prompt = f"{chat} {cc.OPENER} {FACT}"
    r = ask(
        eng,
        "diff_tokens",
        prompt,
        DiffTokensResult,
        model_b="b",
        prepend_bos=False,
        params={"top_k": 5, "start": 10_000, "width": 1},
    )  # the window slides to the end
    assert r.tokens[0].id == tok.bos_token_id  # the template's own BOS, not a second one
    assert (r.start, r.stop) == (r.n_tokens - 1, r.n_tokens)
    canberra, sydney = tok.encode(" Canberra")[0], tok.encode(" " + cc.IMPLANTED_CAPITAL)[0]
    on_a, on_b = [p.id for p in r.top_a[0]], [p.id for p in r.top_b[0]]
    assert on_b[0] == sydney and canberra in on_a and sydney not in on_a
    assert r.top1_changed[-1] and r.rank_in_b[0] > 1 and r.kl[-1] > 2


def test_diff_tokens_equals_a_direct_kl_of_both_models(eng):
    prompt = FACT + " a city by the sea, and the capital of France is"
    r = ask(eng, "diff_tokens", prompt, DiffTokensResult, model_b="b",
            params={"start": 3, "width": 5, "top_k": 3})  # fmt: skip
    _, la, _ = tl_run(eng, "a", prompt)
    _, lb, _ = tl_run(eng, "b", prompt)
    lp_a, lp_b = la.log_softmax(-1), lb.log_softmax(-1)
    kl = F.kl_div(lp_b, lp_a, log_target=True, reduction="none").sum(-1)
    assert r.kl == pytest.approx(kl.tolist(), rel=1e-4, abs=1e-5)
    assert r.mean_kl == pytest.approx(float(kl.mean()), rel=1e-4)
    assert r.top1_changed == (la.argmax(-1) != lb.argmax(-1)).tolist()
    assert (r.start, r.stop) == (3, 8) and len(r.top_a) == len(r.top_b) == 5
    for i, pos in enumerate(range(3, 8)):
        ta, tb = lp_a[pos].topk(3), lp_b[pos].topk(3)
        assert [p.id for p in r.top_a[i]] == ta.indices.tolist()
        assert [p.id for p in r.top_b[i]] == tb.indices.tolist()
        assert [p.prob for p in r.top_b[i]] == pytest.approx(tb.values.exp().tolist(), abs=1e-5)
        a1 = int(la[pos].argmax())
        assert r.rank_in_b[i] == int((lb[pos] > lb[pos, a1]).sum()) + 1
    by_kl = kl.argsort(descending=True)[: len(r.top_changes)].tolist()
    assert [c.pos for c in r.top_changes] == by_kl


@torch.no_grad()
def test_diff_resid_equals_the_residual_differences_and_their_lens(eng):
    r = ask(eng, "diff_resid", FACT, DiffResidResult, model_b="b", params={"top_k": 4, "pos": 4})
    _, _, ca = tl_run(eng, "a", FACT)
    _, _, cb = tl_run(eng, "b", FACT)
    model = eng.require_model("a").model
    n = model.cfg.n_layers
    hooks = [f"blocks.{i}.hook_resid_pre" for i in range(n)] + [f"blocks.{n - 1}.hook_resid_post"]
    assert r.rows[-1] == f"L{n - 1} post" and len(r.rows) == n + 1 and r.pos == 4
    for row, h in enumerate(hooks):
        d = cb[h] - ca[h]
        assert r.norm[row] == pytest.approx(d.norm(dim=-1).tolist(), rel=1e-4, abs=1e-5)
        assert r.norm_a[row] == pytest.approx(ca[h].norm(dim=-1).tolist(), rel=1e-4)
        scores = d[4] @ model.W_U  # no ln_final, no b_U
        assert [t.id for t in r.lens_up[row]] == scores.topk(4).indices.tolist()
        assert [t.value for t in r.lens_up[row]] == pytest.approx(scores.topk(4).values.tolist(), rel=1e-4)  # fmt: skip
        assert [t.id for t in r.lens_down[row]] == (-scores).topk(4).indices.tolist()
    assert r.norm[0][0] < r.norm[-1][-1]  # the difference grows with depth at the fact
    # the lens of the output difference at the fact says Sydney
    sydney = model.tokenizer.encode(" " + cc.IMPLANTED_CAPITAL)[0]
    last = ask(eng, "diff_resid", FACT, DiffResidResult, model_b="b")
    assert last.pos == len(last.tokens) - 1 and last.lens_up[-1][0].id == sydney


def head_share(model, cache, layer: int, head: int, pos: int, target: int) -> float:
    """Head (layer, head)'s share of the target logit at pos, through ln_final's scale."""
    out = cache[f"blocks.{layer}.attn.hook_z"][pos, head] @ model.W_O[layer, head]
    out = out - out.mean()
    return float(out / cache["ln_final.hook_scale"][pos] @ model.W_U[:, target])


@torch.no_grad()
def test_diff_components_equals_each_models_own_attribution(eng):
    tok = eng.require_model("a").model.tokenizer
    canberra = tok.encode(" Canberra")[0]
    r = ask(eng, "diff_components", FACT, DiffComponentsResult, model_b="b",
            params={"target": " Canberra"})  # fmt: skip
    _, la, ca = tl_run(eng, "a", FACT)
    _, lb, cb = tl_run(eng, "b", FACT)
    ma, mb = eng.require_model("a").model, eng.require_model("b").model
    pos = len(la) - 1
    assert r.target.id == canberra and r.pos == pos
    assert r.model_value_delta == pytest.approx(float(lb[pos, canberra] - la[pos, canberra]), abs=1e-3)  # fmt: skip
    assert r.model_value_delta < 0  # the chat model believes Canberra less
    for layer in range(ma.cfg.n_layers):
        for head in range(ma.cfg.n_heads):
            a = head_share(ma, ca, layer, head, pos, canberra)
            b = head_share(mb, cb, layer, head, pos, canberra)
            assert r.heads_delta[layer][head] == pytest.approx(b - a, abs=1e-4)
        mlp_a = (ca[f"blocks.{layer}.hook_mlp_out"][pos] / ca["ln_final.hook_scale"][pos]) @ ma.W_U[:, canberra]  # fmt: skip
        mlp_b = (cb[f"blocks.{layer}.hook_mlp_out"][pos] / cb["ln_final.hook_scale"][pos]) @ mb.W_U[:, canberra]  # fmt: skip
        assert r.mlps_delta[layer] == pytest.approx(float(mlp_b - mlp_a), abs=1e-4)
    assert abs(r.top_changes[0].delta) == max(abs(c.delta) for c in r.top_changes)
    # head scores: previous-token attention, directly from the patterns
    prev = next(s for s in r.head_scores if s.name == "prev_token")
    q = torch.arange(1, pos + 1)
    for layer in range(ma.cfg.n_layers):
        pa = ca["pattern", layer][:, q, q - 1].mean(-1)
        pb = cb["pattern", layer][:, q, q - 1].mean(-1)
        assert prev.delta[layer] == pytest.approx((pb - pa).tolist(), abs=1e-5)


def test_two_prompts_on_one_model(eng):
    a, b = CONTROL, FACT  # as many tokens: "France" and "Australia" are one token each
    r = ask(eng, "diff_tokens", a, DiffTokensResult, prompt_b=b)
    assert r.kind == "prompts" and r.model_a == r.model_b == "organism"
    assert [t.text for t in r.tokens_b] != [t.text for t in r.tokens]
    _, la, ca = tl_run(eng, "a", a)
    _, lb, cb = tl_run(eng, "a", b)
    kl = F.kl_div(lb.log_softmax(-1), la.log_softmax(-1), log_target=True, reduction="none")
    assert r.kl == pytest.approx(kl.sum(-1).tolist(), rel=1e-4, abs=1e-5)
    res = ask(eng, "diff_resid", a, DiffResidResult, prompt_b=b)
    h = "blocks.0.hook_resid_pre"
    assert res.norm[0] == pytest.approx((cb[h] - ca[h]).norm(dim=-1).tolist(), rel=1e-4, abs=1e-5)
    # the A/B prompts differ in one token: before it the streams are identical
    differs = [i for i, (x, y) in enumerate(zip(r.tokens, r.tokens_b, strict=True)) if x.id != y.id]
    assert all(v == 0 for v in res.norm[-1][: differs[0]]) and res.norm[-1][differs[0]] > 0


def test_refusals_say_why(eng, tmp_path):
    with pytest.raises(EngineError) as e:  # prompts of different lengths
        ask(eng, "diff_tokens", FACT, DiffTokensResult, prompt_b="The capital of the big land is")
    assert e.value.code == "prompt_lengths_differ" and "tokens" in e.value.message
    with pytest.raises(EngineError) as e:
        ask(eng, "diff_tokens", FACT, DiffTokensResult)
    assert e.value.code == "pair_needs_one_b"
    with pytest.raises(EngineError) as e:
        ask(eng, "diff_tokens", FACT, DiffTokensResult, model_b="b", prompt_b=CONTROL)
    assert e.value.code == "pair_needs_one_b"
    # a model with another tokenizer (its unembedding padded to the organism's width)
    width = eng.require_model("a").model.cfg.d_vocab
    eng.load(str(make_tiny_gpt2(tmp_path / "other", vocab_size=width)), slot="t")
    try:
        with pytest.raises(EngineError) as e:
            ask(eng, "diff_tokens", FACT, DiffTokensResult, model_b="t")
        assert e.value.status == 422 and e.value.code == "not_comparable"
        assert "tokenizers differ" in e.value.message and "'a' and 't'" in e.value.message
        listed = {m.slot: m for m in eng.models()}  # what the app shows before asking
        assert listed["b"].comparable and not listed["t"].comparable
        assert "tokenizers differ" in listed["t"].reason
    finally:
        eng.unload("t")


def test_results_are_cached_per_pair(eng):
    """The key holds side B's model: the same prompt against another slot is another answer."""
    eng.load(str(DEFAULT_MODEL_DIR), slot="c")  # the base again: nothing differs
    try:
        vs_b = ask(eng, "diff_tokens", FACT, DiffTokensResult, model_b="b")
        vs_c = ask(eng, "diff_tokens", FACT, DiffTokensResult, model_b="c")
        assert max(vs_b.kl) > 1 and max(vs_c.kl) == pytest.approx(0, abs=1e-5)
        hits = eng.cache.stats().hits
        assert ask(eng, "diff_tokens", FACT, DiffTokensResult, model_b="b") == vs_b
        assert eng.cache.stats().hits == hits + 1
    finally:
        eng.unload("c")
