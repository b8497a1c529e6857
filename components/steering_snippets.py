"""The bundle of the Steering view's KL figure: the KL per step and both continuations' tokens,
and a snippet that regenerates them with TransformerLens hooks on its own.

The snippet rebuilds each steering vector as the engine resolved it (the stream's ``start``
event names its hook point and where a latent's dictionary is stored): an SAE latent's decoder
row (SAELens), a transcoder latent's (its safetensors file), or a contrastive mean difference
recomputed from the two prompt sets; conditions the same way. It then generates exactly as
``engine/steering.py`` does: each continuation on its own TransformerLens KV cache with its own
``torch.Generator`` seeded alike, the engine's sampler, and the engine's unembedding
(``engine/fast_unembed.py``), so on the same device it samples the same tokens.
"""

from __future__ import annotations

from components.bundles import Array, BundleSpec
from components.safe import code_comment
from components.snippets import relative_path
from engine.schemas.steering import Condition, SteeringVector, SteerRequest

_PRELUDE = '''
from transformer_lens import TransformerLensKeyValueCache

# Sampling draws from a torch.Generator on the model's device seeded with SEED, one per
# continuation, as the engine does: the same tokens need the same kind of device as the engine's.
MAX_NEW_TOKENS, TEMPERATURE, TOP_K, SEED, STOP_AT_EOS = {settings}
device, dtype = model.cfg.device, model.cfg.dtype
{tokens}


# The engine's unembedding, one addmm on W_U (engine/fast_unembed.py): TransformerLens's
# F.linear on a transposed copy can differ in the last bit, which could flip a sampled token.
def unembed(residual):
    flat = residual.reshape(-1, residual.shape[-1])
    return torch.addmm(model.unembed.b_U, flat, model.W_U).reshape(*residual.shape[:-1], -1)


model.unembed.forward = unembed


def contrastive(positive, negative, hook):
    """Mean activation at `hook` of `positive` minus `negative`: each text's mean over its
    tokens (BOS left out), averaged over the texts."""

    def mean(texts):
        means = []
        for text in texts:
            ids = model.to_tokens(text, prepend_bos=True)[:, : model.cfg.n_ctx]
            _, c = model.run_with_cache(ids, names_filter=lambda name: name == hook)
            means.append(c[hook][0, 1:].float().mean(0))
        return torch.stack(means).mean(0)

    return mean(positive) - mean(negative)


# (hook point, coefficient, direction, gate); gate: (hook point read, gate fn, threshold): the
# vector applies where gate fn of the activation read there exceeds the threshold
vectors = []
'''

_GENERATE = '''
def steering_hooks():
    """One hook per hook point: compute the conditions read there, then add the vectors."""
    masks, points = {}, []
    for hook, _, _, gate in vectors:
        points += [hook] + ([gate[0]] if gate else [])

    def make(name):
        gates = [(i, g) for i, (_, _, _, g) in enumerate(vectors) if g and g[0] == name]
        adds = [(i, (c * d).to(device, dtype), g) for i, (h, c, d, g) in enumerate(vectors)
                if h == name]

        def hook(act, hook):
            for i, (_, gate, threshold) in gates:
                masks[i] = (gate(act) > threshold).to(act.dtype)[..., None]
            for i, delta, gated in adds:
                act = act + (delta * masks[i] if gated else delta)
            return act

        return hook

    return [(name, make(name)) for name in dict.fromkeys(points)]


def sample(logits, gen):
    """engine/steering.py's sampler."""
    if TEMPERATURE == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / TEMPERATURE
    if TOP_K is not None and TOP_K < logits.shape[-1]:
        kth = logits.topk(TOP_K).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=gen)


def generate(hooks):
    """One continuation a token at a time on its own KV cache and generator: (id, log-probs)
    of each step, up to and with EOS."""
    kv = TransformerLensKeyValueCache.init_cache(model.cfg, device, 1)
    gen = torch.Generator(device=device).manual_seed(SEED)
    x, out = prompt_ids, []
    for _ in range(min(MAX_NEW_TOKENS, model.cfg.n_ctx - prompt_ids.shape[1])):
        with model.hooks(fwd_hooks=hooks):
            last = model(x, past_kv_cache=kv, attention_mask=torch.ones_like(x))[0, -1].float()
        token = sample(last, gen)
        out.append((int(token), last.log_softmax(-1)))
        if STOP_AT_EOS and int(token) == model.tokenizer.eos_token_id:
            break
        x = token[None]
    return out


base, steered = generate([]), generate(steering_hooks())
stopped = (None, None)  # a continuation after its EOS
steps = [(base[i] if i < len(base) else stopped, steered[i] if i < len(steered) else stopped)
         for i in range(max(len(base), len(steered)))]
data = {
    # KL(steered || baseline) of each step's next-token distributions (0 once one has stopped)
    "kl": [0.0 if b[1] is None or s[1] is None else float((s[1].exp() * (s[1] - b[1])).sum())
           for b, s in steps],
    "baseline_id": [b[0] for b, _ in steps],  # None once a continuation has stopped at EOS
    "steered_id": [s[0] for _, s in steps],
}
'''


def _assign(name: str, value: list[str]) -> list[str]:
    """``name = value`` as snippet lines, one item a line when long."""
    one = f"{name} = {value!r}"
    if len(one) <= 96:
        return [one]
    return [f"{name} = [", *(f"    {item!r}," for item in value), "]"]


class _Code:
    """The snippet's statements that rebuild the vectors; each dictionary is loaded once."""

    def __init__(self) -> None:
        self.imports: dict[str, None] = {}
        self.lines: list[str] = []
        self.loaded: dict[tuple, str] = {}
        self.packages: set[str] = set()

    def dictionary(self, ref: dict) -> str:
        """The variable holding `ref`'s weights (an SAE, or a transcoder's W_dec)."""
        key = (ref["kind"], ref.get("path"), ref.get("release"), ref.get("sae_id"))
        if key in self.loaded:
            return self.loaded[key]
        name = f"{'sae' if ref['kind'] == 'sae' else 'transcoder'}_{len(self.loaded)}"
        if ref["kind"] == "transcoder":
            self.packages.add("safetensors")
            self.imports["from safetensors.torch import load_file"] = None
            path = relative_path(ref["path"])
            self.lines += [
                f"{name} = load_file({path!r}, device=str(device))['W_dec']  # [latent, d_model]"
            ]
        else:
            self.packages.add("sae_lens")
            self.imports["from sae_lens import SAE"] = None
            where = (
                f"SAE.from_pretrained({ref['release']!r}, {ref['sae_id']!r}, device=device)"
                if ref.get("release")
                else f"SAE.load_from_disk({relative_path(ref['path'])!r}, device=device)"
            )
            self.lines.append(f"{name} = {where}.eval()")
        self.loaded[key] = name
        return name

    def vector(self, i: int, v: SteeringVector, r: dict) -> None:
        head = f"# {code_comment(r['label'])} × {r['coefficient']!r} at {code_comment(r['hook'])}"
        self.lines += ["", head + (", where its condition holds" if r["conditional"] else "")]
        if v.kind == "contrastive":
            self.lines += _assign(f"positive_{i}", v.positive)
            self.lines += _assign(f"negative_{i}", v.negative)
            self.lines.append(
                f"direction_{i} = contrastive(positive_{i}, negative_{i}, {r['hook']!r})"
            )
        else:
            d = self.dictionary(r["dictionary"])
            w_dec = d if r["dictionary"]["kind"] == "transcoder" else f"{d}.W_dec"
            self.lines.append(f"direction_{i} = {w_dec}[{v.index}]  # the latent's decoder row")
        gate = self.gate(i, v.condition, r) if v.condition is not None else "None"
        self.lines.append(
            f"vectors.append(({r['hook']!r}, {r['coefficient']!r}, direction_{i}, {gate}))"
        )

    def gate(self, i: int, c: Condition, r: dict) -> str:
        """Lines defining ``gate_<i>(act)``, the value compared with the threshold; the gate."""
        if c.probe_hook is not None:  # the unit mean difference of two prompt sets
            self.lines += _assign(f"probe_positive_{i}", c.positive)
            self.lines += _assign(f"probe_negative_{i}", c.negative)
            self.lines += [
                f"probe_{i} = contrastive(probe_positive_{i}, probe_negative_{i}, "
                f"{c.probe_hook!r})",
                f"probe_{i} = probe_{i} / probe_{i}.norm().clamp_min(1e-12)",
                "",
                "",
                f"def gate_{i}(act):  # the projection on the probe direction",
                f"    return act @ probe_{i}.to(act.device, act.dtype)",
                "",
                "",
            ]
            return f"({c.probe_hook!r}, gate_{i}, {c.threshold!r})"
        g = self.dictionary(r["gate"])
        self.lines += [
            "",
            "",
            f"def gate_{i}(act):  # SAE latent {c.index}",
            f"    return {g}.encode(act.to({g}.W_dec.dtype))[..., {c.index}]",
            "",
            "",
        ]
        return f"({g}.cfg.metadata.hook_name, gate_{i}, {c.threshold!r})"


def kl_bundle(request: dict, events: list[dict]) -> BundleSpec | None:
    """The KL figure's bundle from the request the view sent and the stream's events; None
    until the stream has ended well (a stopped or failed one has only part of the steps)."""
    start = events[0] if events and events[0]["type"] == "start" else None
    if start is None or events[-1]["type"] != "done":
        return None
    req = SteerRequest.model_validate(request)
    code = _Code()
    for i, (v, r) in enumerate(zip(req.vectors, start.get("vectors") or [], strict=True)):
        code.vector(i, v, r)
    steps = [e for e in events if e["type"] == "token"]
    base = [e.get("base") for e in steps]
    steered = [e.get("steered") for e in steps]
    settings = (req.max_new_tokens, req.temperature, req.top_k, req.seed, req.stop_at_eos)
    tokens = (
        "prompt_ids = tokens  # [1, pos], BOS first"
        if req.prepend_bos
        else "prompt_ids = torch.tensor([model.tokenizer(PROMPT, add_special_tokens=False)"
        '["input_ids"]], device=device)  # no BOS'
    )
    body = (
        "\n".join(code.imports)
        + _PRELUDE.format(settings=", ".join(map(repr, settings)), tokens=tokens)
        + "\n".join(code.lines)
        + "\n\n"
        + _GENERATE
    )
    return BundleSpec(
        data={
            "kl": Array(("step",), [e["kl"] for e in steps]),
            "baseline_id": Array(("baseline_token",), [t["id"] if t else None for t in base]),
            "steered_id": Array(("steered_token",), [t["id"] if t else None for t in steered]),
        },
        code=body,
        labels={
            "baseline_token": [t["text"] if t else "" for t in base],
            "steered_token": [t["text"] if t else "" for t in steered],
        },
        packages=("transformer_lens", *sorted(code.packages)),
    )
