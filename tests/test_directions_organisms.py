"""Ground truth for acting on directions, on the shipped organisms.

Chat organism: the harmful-minus-harmless difference of means (organism/refusal_direction.py's,
one candidate per layer, the layer picked on training requests) is saved as a direction,
ablated at every layer by the ``direction_sweep`` job: the refusal rate on held-out harmful
requests falls from >= 0.9 to < 0.2 while the KL on held-out harmless prompts stays small;
every number equals the same measurement written here with TransformerLens's own ``generate``
and torch. The exported orthogonalised model refuses as the hooked one and gives its logits.

Base organism (the phase-E base), issue 15's claim through the product path: the
``probe_sweep`` job on story openings cut right after their mood adjective (position "last",
every layer) reaches held-out accuracy 1.00 at every hook from layer 0 on (easy: the cut
openings are 8 strings, 4 adjectives a mood after one prefix, so the shuffled-label baseline
also reaches 0.94-1.00 on some splits); its layer-1 difference of means, saved via
``POST /probes/{sweep}/directions``, also separates mood words it never saw ("felt
delighted/excited" vs "upset/miserable" in the stories, AUROC 1.00). Added at half the residual
norm it steers held-out openings' greedy continuations (happy share 0.48 -> 1.00 / 0.00 by its
sign); ablated at every layer it takes the mood gap (happy share after happy minus after sad
openings, 24 tokens) from 1.00 to 0.00 at 0.005 nats of KL on neutral texts: in 6 sweeps
(split seeds 0-3 of this story set, 0-1 of another) gap 0.00 and KL 0.0043-0.0050 each time.
The gap is flat because every continuation turns sad (0 happy / 36 sad words; clean 15 / 16:
the sky sentence, "dark and rainy", is the default once the adjective's mood is gone; pinning
the projection at the sweep's threshold instead does the same). Layer 2's direction also
ablates the gap to 0.00-0.13 (KL 0.006-0.007) but does not steer at that strength (happy
share 0.41-0.50 / 0.27-0.44), hence layer 1. The same recipe left gaps of 0.22 / 0.60 on
the older phase A-C base, so this holds on the shipped base only. Measured before, not
asserted: the all-token happy-minus-sad mean at layer 2 only halves the gap (1.00 -> 0.50 on
both bases). Every layer's adjective direction ablated together (their span; asserted: equal
to the same span projected out here and to the exported weights, below the clean gap) reaches
0.00 on A-C but only 0.77 on E (0.094 nats), worse than layer 1's alone.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score

from engine import direction_sweep, interventions
from engine.api import create_app
from engine.loading import load_model
from engine.service import Engine
from engine.settings import DEFAULT_MODEL_DIR, EngineSettings
from organism import chat_corpus as cc
from organism import corpus, metrics
from organism import refusal_direction as rd
from tests.helpers import CHAT_DIR

REFUSAL_KEYWORD = "I can't"
MAX_NEW = 6
NEUTRAL = Path(direction_sweep.__file__).with_name("neutral_texts.txt")


def serve(model_dir: Path, tmp: Path):
    eng = Engine(EngineSettings(model=str(model_dir), cache_dir=tmp / "cache", data_dirs=[tmp]))
    return eng, TestClient(create_app(eng))


def ablation_hooks(model, r: torch.Tensor) -> list:
    """Arditi et al.'s ablation, written here: r projected out of every block's resid_pre,
    attention output and MLP output."""

    def hook(x, hook):
        return x - (x @ r)[..., None] * r

    return [(f"blocks.{i}.{h}", hook) for i in range(model.cfg.n_layers)
            for h in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")]  # fmt: skip


@torch.inference_mode()
def tl_generate(model, texts: list[str], hooks: list, max_new: int) -> list[str]:
    """TransformerLens's own greedy generate, one prompt at a time (the text holds its BOS)."""
    out = []
    with model.hooks(fwd_hooks=hooks):
        for t in texts:
            ids = model.to_tokens(t, prepend_bos=False)
            gen = model.generate(ids, max_new_tokens=max_new, do_sample=False, verbose=False,
                                 stop_at_eos=True, eos_token_id=model.tokenizer.eos_token_id)  # fmt: skip
            new = gen[0, ids.shape[1] :].tolist()
            eos = model.tokenizer.eos_token_id
            out.append(model.tokenizer.decode(new[: new.index(eos)] if eos in new else new))
    return out


@torch.inference_mode()
def direct_kl(model, texts: list[str], hooks: list) -> float:
    kls = []
    for t in texts:
        ids = model.to_tokens(t, prepend_bos=False)
        p = torch.log_softmax(model(ids)[0].float(), -1)
        q = torch.log_softmax(model.run_with_hooks(ids, fwd_hooks=hooks)[0].float(), -1)
        kls.append(
            torch.nn.functional.kl_div(q, p, log_target=True, reduction="none").sum(-1).mean()
        )
    return float(torch.stack(kls).mean())


# --- chat organism: refusal -------------------------------------------------------------------
@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    if not (CHAT_DIR / "model.safetensors").exists():
        pytest.skip("chat organism not shipped")
    eng, api = serve(CHAT_DIR, tmp_path_factory.mktemp("chat"))
    with api:
        yield eng, api
    eng.close()


@pytest.fixture(scope="module")
def refusal(chat):
    """The difference-of-means direction of the layer whose ablation most lowers the refusal
    margin on training-distribution harmful requests (never the held-out ones), saved."""
    eng, api = chat
    model = eng.lm.model
    dirs = rd.directions(model)
    tok, train = model.tokenizer, random.Random(3).sample(cc.train_requests(True), 12)
    margins = [rd.refusal_margin(rd.ablated(model, d), tok, train) for d in dirs[:-1]]
    layer = min(range(len(margins)), key=margins.__getitem__)
    body = {"name": "refusal", "hook": f"blocks.{layer}.hook_resid_pre", "vector": dirs[layer].tolist(),
            "provenance": {"method": "diff_of_means", "prompt_sets": "chat_corpus train requests",
                           "position": "last prompt token"}}  # fmt: skip
    assert api.post("/directions", json=body).status_code == 200
    return layer, dirs[layer]


def test_ablating_the_refusal_direction(chat, refusal):
    eng, api = chat
    model, tok = eng.lm.model, eng.lm.model.tokenizer
    layer, d = refusal
    harmful, harmless = cc.heldout_requests(True)[::3], cc.heldout_requests(False)[::6]
    params = {"intervention": {"name": "refusal", "mode": "ablate", "layers": "all"},
              "values": [0.0, 1.0], "prompts": harmful, "harmless": harmless, "chat": True,
              "classifier": {"keywords": [REFUSAL_KEYWORD]}, "max_new_tokens": MAX_NEW}  # fmt: skip
    job = api.post("/jobs/direction_sweep", json=params).json()
    res = api.get(f"/jobs/{job['id']}/wait?timeout_s=300").json()
    assert res["job"]["status"] == "done", res
    got = res["result"]
    off, on = got["rows"]
    # the same measurement, written here: TransformerLens's generate, torch's KL
    r = d / d.norm()
    hooks = ablation_hooks(model, r)
    prompts = [rd.prompt(tok, q) for q in harmful]
    clean = tl_generate(model, prompts, [], MAX_NEW)
    ablated = tl_generate(model, prompts, hooks, MAX_NEW)
    rate = lambda texts: sum(REFUSAL_KEYWORD.lower() in t.lower() for t in texts) / len(texts)  # noqa: E731
    kl = direct_kl(model, [rd.prompt(tok, q) for q in harmless], hooks)
    print(f"refusal direction from layer {layer}: refusal {rate(clean):.3f} -> {rate(ablated):.3f}, "
          f"harmless KL {kl:.4f} nats (engine: {got['baseline_rate']:.3f} -> {on['rate']:.3f}, "
          f"KL {on['kl']:.4f})")  # fmt: skip
    assert got["baseline_rate"] == off["rate"] == rate(clean) >= 0.9
    assert off["kl"] == pytest.approx(0.0, abs=1e-9)
    assert on["rate"] == rate(ablated) < 0.2
    assert on["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-6)
    assert on["kl"] < 0.05  # small: harmless prompts barely move (measured 0.024 nats)
    assert on["examples"][:2] == ablated[:2]
    # the same job again is answered from the cache
    again = api.post("/jobs/direction_sweep", json=params).json()
    again = api.get(f"/jobs/{again['id']}/wait?timeout_s=60").json()
    assert again["result"] == got


def test_exported_orthogonalised_chat_model_behaves_the_same(chat, refusal):
    eng, api = chat
    model, tok = eng.lm.model, eng.lm.model.tokenizer
    got = api.post("/directions/export", json={"direction": "refusal", "out": "chat-abliterated"})
    assert got.status_code == 200, got.text
    out = Path(got.json()["path"])
    ortho = load_model(str(out)).model
    r = refusal[1] / refusal[1].norm()
    hooks = ablation_hooks(model, r)
    harmful = [rd.prompt(tok, q) for q in cc.heldout_requests(True)[::3]]
    assert tl_generate(ortho, harmful, [], MAX_NEW) == tl_generate(model, harmful, hooks, MAX_NEW)
    with torch.inference_mode():
        for q in harmful[:4] + [rd.prompt(tok, q) for q in cc.heldout_requests(False)[:4]]:
            ids = model.to_tokens(q, prepend_bos=False)
            want = model.run_with_hooks(ids, fwd_hooks=hooks)
            torch.testing.assert_close(ortho(ids), want, atol=2e-4, rtol=1e-4)


# --- base organism: sentiment ----------------------------------------------------------------
SENT_HOOK = "blocks.1.hook_resid_pre"
STORY_TOKENS = 24


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    if not (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("the demo organism is not shipped here")
    eng, api = serve(DEFAULT_MODEL_DIR, tmp_path_factory.mktemp("base"))
    with api:
        yield eng, api
    eng.close()


def mood_counts(tok, gens: list[list[int]]) -> tuple[int, int]:
    """Happy and sad words (the corpus's own lists) in the continuations."""
    pairs = [metrics.sentiment_counts(tok.decode(g)) for g in gens]
    return sum(h for h, _ in pairs), sum(s for _, s in pairs)


def happy_share(counts: tuple[int, int]) -> float:
    return counts[0] / max(1, sum(counts))


def test_sentiment_direction_steers_and_its_ablation_flattens_mood(base):
    eng, api = base
    lm = eng.lm
    model, tok = lm.model, lm.model.tokenizer
    rng = random.Random(123)
    happy = [corpus.make_story(rng, "happy") for _ in range(32)]
    sad = [corpus.make_story(rng, "sad") for _ in range(32)]
    # the probe sweep (the product's job) of the openings cut right after their mood adjective,
    # read at that adjective (position "last"), every layer
    cut = {m: [adjective_cut(t) for t in texts] for m, texts in (("happy", happy), ("sad", sad))}
    job = api.post("/jobs/probe_sweep", json={"positive": cut["happy"], "negative": cut["sad"],
                                               "position": "last"}).json()  # fmt: skip
    res = api.get(f"/jobs/{job['id']}/wait?timeout_s=120").json()
    assert res["job"]["status"] == "done", res
    rows = res["result"]["results"]
    assert [r["hook"] for r in rows][:2] == ["blocks.0.hook_resid_pre", SENT_HOOK]
    accs = [(r["diff_of_means"]["accuracy"], r["logistic_probe"]["accuracy"]) for r in rows]
    print(f"held-out accuracy (diff of means, probe) per hook: {accs}")
    assert all(min(a) >= 0.9 for a in accs[1:])  # from layer 1 on
    got = api.post(f"/probes/{res['result']['sweep']}/directions",
                   json={"hook": SENT_HOOK, "method": "diff_of_means", "name": "sentiment"})  # fmt: skip
    assert got.status_code == 200, got.text
    r = torch.tensor(api.get("/directions/sentiment").json()["vector"])
    # the adjective's difference of means, written here (all stories; the sweep's: its
    # training share)
    v = adjective_mean(model, happy, SENT_HOOK) - adjective_mean(model, sad, SENT_HOOK)
    assert float(r @ v / v.norm()) > 0.95
    # The cut openings are 8 strings (4 adjectives a mood after one prefix), so held-out
    # accuracy there is easy; the direction also separates mood words the sweep never saw,
    # in the stories' own context: "felt delighted/excited" vs "felt upset/miserable".
    seen = {w for m in ("happy", "sad") for w in corpus._MOOD[m]["adj"]}
    xs, ys = [], []
    for y, stories in ((1, happy), (0, sad)):
        for s in stories:
            word = re.search(r"felt (\w+)", s)
            if word.group(1) not in seen:
                with torch.inference_mode():
                    ids = model.to_tokens(s[: word.end(1)])
                    _, cache = model.run_with_cache(ids, names_filter=SENT_HOOK)
                xs.append(float(cache[SENT_HOOK][0, -1] @ r))
                ys.append(y)
    auroc = roc_auc_score(ys, xs)
    print(f"unseen mood words ({len(ys)}): AUROC {auroc:.2f}")
    assert min(ys.count(0), ys.count(1)) >= 8 and auroc >= 0.9

    pairs = metrics.sentiment_prompts(16, seed=5)  # held-out openings, moods alternating
    prompts = direction_sweep.encode(lm, [o for _, o in pairs], chat=False)
    eos = tok.eos_token_id
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([prompts[0]]), names_filter=SENT_HOOK)
    scale = float(cache[SENT_HOOK][0, 1:].norm(dim=-1).mean()) / 2  # half the residual norm
    store = eng.lm.session.directions

    def run(it: dict) -> list[list[int]]:
        from engine.schemas.directions import DirectionIntervention

        applied = interventions.resolve(lm, [DirectionIntervention(name="sentiment", **it)], store)
        hooks = interventions.hooks(applied, "cpu", torch.float32)
        return direction_sweep.greedy(model, prompts, hooks, STORY_TOKENS, eos)

    clean = direction_sweep.greedy(model, prompts, [], STORY_TOKENS, eos)
    up, down = run({"mode": "add", "coeff": scale}), run({"mode": "add", "coeff": -scale})
    # the same steering with a plain hook
    with torch.inference_mode():
        direct_up = direction_sweep.greedy(
            model, prompts, [(SENT_HOOK, lambda x, hook: x + scale * r)], STORY_TOKENS, eos
        )
    assert up == direct_up
    c_clean, c_up, c_down = (mood_counts(tok, g) for g in (clean, up, down))
    print(f"happy share: clean {happy_share(c_clean):.2f} {c_clean}, +{scale:.2f}: "
          f"{happy_share(c_up):.2f} {c_up}, -{scale:.2f}: {happy_share(c_down):.2f} {c_down}")  # fmt: skip
    assert happy_share(c_up) >= 0.9 and happy_share(c_down) <= 0.1
    assert sum(c_up) >= 3 and sum(c_down) >= 8
    assert happy_share(c_down) < happy_share(c_clean) < happy_share(c_up)

    # ablated at every layer: how much each opening's mood carries into its continuation
    def gap(gens):
        h = [g for g, (m, _) in zip(gens, pairs, strict=True) if m == "happy"]
        s = [g for g, (m, _) in zip(gens, pairs, strict=True) if m == "sad"]
        return happy_share(mood_counts(tok, h)) - happy_share(mood_counts(tok, s))

    ablated = run({"mode": "ablate"})
    rc = (r - r.mean()) / (r - r.mean()).norm()
    assert ablated == direction_sweep.greedy(
        model, prompts, ablation_hooks(model, rc), STORY_TOKENS, eos
    )
    neutral = [t for t in NEUTRAL.read_text().splitlines()
               if t.strip() and sum(metrics.sentiment_counts(t)) == 0][:16]  # fmt: skip
    neutral = [f"{tok.bos_token}{t}" for t in neutral]
    kl = direct_kl(model, neutral, ablation_hooks(model, rc))
    print(f"mood gap (happy share, happy minus sad openings): clean {gap(clean):.2f}, "
          f"ablated {gap(ablated):.2f} (happy, sad words: {mood_counts(tok, ablated)}) "
          f"at {kl:.4f} nats of neutral-text KL; "
          f"e.g. {tok.decode(ablated[0])!r}")  # fmt: skip
    assert gap(clean) >= 0.9 and gap(ablated) <= 0.2 and kl < 0.05

    # Every layer's adjective direction from the same sweep, ablated together (their span):
    # on the phase A-C base the gap fell to 0.00 (KL 0.056 nats), on the phase-E base only to
    # 0.77 (KL 0.094), below the layer-1 direction alone. What holds on both, asserted: the
    # engine's joint ablation is the span projected out, it lowers the gap, fluency holds, and
    # the exported weights continue as the hooks.
    names, vs = [], []
    for k, row in enumerate(rows):
        got = api.post(f"/probes/{res['result']['sweep']}/directions",
                       json={"hook": row["hook"], "method": "diff_of_means", "name": f"mood{k}"})  # fmt: skip
        assert got.status_code == 200, got.text
        names.append(f"mood{k}")
        vs.append(torch.tensor(api.get(f"/directions/mood{k}").json()["vector"]))
    assert len(names) == model.cfg.n_layers + 1
    from engine.schemas.directions import DirectionIntervention

    items = [DirectionIntervention(name=n, mode="ablate") for n in names]
    hooks = interventions.hooks(interventions.resolve(lm, items, store), "cpu", torch.float32)
    flat = direction_sweep.greedy(model, prompts, hooks, STORY_TOKENS, eos)
    # the same, written here: the unit directions' span (Gram-Schmidt) projected out
    basis: list[torch.Tensor] = []
    for v in vs:
        for b in basis:
            v = v - (v @ b) * b
        basis.append(v / v.norm())
    direct = ablation_hooks_span(model, torch.stack(basis, 1))
    assert flat == direction_sweep.greedy(model, prompts, direct, STORY_TOKENS, eos)
    kl = direct_kl(model, neutral, direct)
    print(f"adjective directions (every layer) ablated: mood gap {gap(flat):.2f}, "
          f"neutral KL {kl:.4f} nats; e.g. {tok.decode(flat[0])!r}")  # fmt: skip
    assert gap(flat) < gap(clean) and kl < 0.15
    # the same ablation as a weight edit: the exported model continues as the hooked one
    got = api.post("/directions/export", json={"direction": names[0], "also": names[1:],
                                               "out": "base-mood-erased"})  # fmt: skip
    assert got.status_code == 200, got.text
    ortho = load_model(got.json()["path"]).model
    assert direction_sweep.greedy(ortho, prompts, [], STORY_TOKENS, eos) == flat


def adjective_cut(story: str) -> str:
    """The story's opening up to its adjective: "Once upon a time, there was a ADJ"."""
    first = story.split(".")[0]
    adj = first.split()[7]
    return first[: first.index(" " + adj) + len(adj) + 1]


def adjective_mean(model, stories: list[str], hook: str) -> torch.Tensor:
    """Mean activation at `hook` at each story's opening adjective ("... there was a ADJ")."""
    out = []
    with torch.inference_mode():
        for s in stories:
            n = model.to_tokens(adjective_cut(s)).shape[1]
            _, cache = model.run_with_cache(model.to_tokens(s), names_filter=hook)
            out.append(cache[hook][0, n - 1].float())
    return torch.stack(out).mean(0)


def ablation_hooks_span(model, q: torch.Tensor) -> list:
    """The span of q's orthonormal columns projected out where ``ablation_hooks`` projects."""

    def hook(x, hook):
        return x - (x @ q) @ q.T

    return [(f"blocks.{i}.{h}", hook) for i in range(model.cfg.n_layers)
            for h in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")]  # fmt: skip
