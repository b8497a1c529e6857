"""The bundle of the Steering view's KL figure: the KL per step and both continuations' tokens,
and a snippet that regenerates them with TransformerLens hooks on its own.

The snippet rebuilds each steering vector as the engine resolved it (the stream's ``start``
event names its hook point and where a latent's dictionary is stored): an SAE latent's decoder
row (SAELens), a transcoder latent's (its safetensors file), or a contrastive mean difference
recomputed from the two prompt sets; conditions the same way. It then generates as
``engine/steering.py`` does, with that module's own code (its source, read by
``components.engine_source``: ``mean_activation``, ``Probe``, ``_hooks``, ``_sample``, the
``Continuation`` a step at a time and ``_steps``, which pairs them and takes the KL) on the
engine's layout of the weights (``engine/layout.py``): each continuation on its own
TransformerLens KV cache with its own ``torch.Generator`` seeded alike, so on the same device
it samples the same tokens. A saved direction acted on (Directions page) is its stored unit
vector, resolved and hooked by ``engine/interventions.py``'s own ``residual_direction``,
``hook_points``, ``Applied`` and ``hooks``, after the vectors' hooks as the engine runs them.
"""

from __future__ import annotations

from components.bundles import Array, BundleSpec
from components.engine_source import engine_source
from components.safe import code_comment
from components.snippets import relative_path
from engine.schemas.directions import Direction, DirectionIntervention
from engine.schemas.saes import DictionaryRef
from engine.schemas.steering import (
    Condition,
    ResolvedVector,
    SteeringVector,
    SteerRequest,
    StreamEvent,
)

# The engine's own functions the snippet runs (read from their files: components.engine_source)
ENGINE = engine_source(
    ("engine.layout", ("QKV", "_store", "_unembed_forward", "forward_layout")),
    (
        "engine.steering",
        ("mean_activation", "Probe", "_hooks", "_sample", "Step", "Continuation", "_kl", "_steps"),
    ),
)
# The engine's edits of saved directions (engine/interventions.py), in a snippet that acts on some
INTERVENTIONS = engine_source(
    ("engine.interventions", ("ABLATE_AT", "add", "ablate", "cap", "span", "ablate_span",
                              "residual_direction", "whole_ablation",
                              "centred", "hook_points", "Applied", "hooks")),
)  # fmt: skip

_PRELUDE = '''
from types import SimpleNamespace

# Sampling draws from a torch.Generator on the model's device seeded with SEED, one per
# continuation, as the engine does: the same tokens need the same kind of device as the engine's.
MAX_NEW_TOKENS, TEMPERATURE, TOP_K, SEED, STOP_AT_EOS = {settings}
device, dtype = model.cfg.device, model.cfg.dtype
{tokens}
forward_layout(model)  # the engine's forward pass: its weights' layout and its unembedding
lm = SimpleNamespace(model=model, n_ctx=model.cfg.n_ctx, path="hooked")  # what the engine reads
req = SimpleNamespace(temperature=TEMPERATURE, top_k=TOP_K, seed=SEED, stop_at_eos=STOP_AT_EOS)


def contrastive(positive, negative, hook):
    """Mean activation at `hook` of `positive` minus `negative` (the engine's)."""
    return mean_activation(lm, positive, hook) - mean_activation(lm, negative, hook)


# The vectors, as the engine resolves them: hook point, coefficient, direction, and a gate
# (a dictionary or probe read at `gate.reads`; the vector applies where latent `gate_index`
# of `gate.encode(activation)` exceeds `threshold`), or none
vectors = []
'''

_GENERATE = """
# Both continuations as the engine's generate_pair steps them: the same Continuation class,
# one with the vectors' hooks; each step's tokens (None once a continuation has stopped at EOS)
# and KL(steered || baseline) of the step's next-token distributions
ids = prompt_ids[0].tolist()
n_new = min(MAX_NEW_TOKENS, lm.n_ctx - len(ids))
base = Continuation(lm, ids, [], req)
hooks_on = _hooks(vectors, device, dtype)STEERED_EXTRA
steer = Continuation(lm, ids, hooks_on, req) if hooks_on else None
steps = list(_steps(n_new, base, steer, None, [], None))
data = {
    "kl": [s.kl for s in steps],
    "baseline_id": [s.base for s in steps],
    "steered_id": [s.steered for s in steps],
}
"""


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

    def dictionary(self, ref: DictionaryRef) -> str:
        """The variable holding `ref`'s weights (an SAE, or a transcoder's W_dec)."""
        key = (ref.kind, ref.path, ref.release, ref.sae_id)
        if key in self.loaded:
            return self.loaded[key]
        name = f"{'sae' if ref.kind == 'sae' else 'transcoder'}_{len(self.loaded)}"
        if ref.kind == "transcoder":
            self.packages.add("safetensors")
            self.imports["from safetensors.torch import load_file"] = None
            path = relative_path(ref.path or "")
            self.lines += [
                f"{name} = load_file({path!r}, device=str(device))['W_dec']  # [latent, d_model]"
            ]
        else:
            self.packages.add("sae_lens")
            self.imports["from sae_lens import SAE"] = None
            where = (
                f"SAE.from_pretrained({ref.release!r}, {ref.sae_id!r}, device=device)"
                if ref.release
                else f"SAE.load_from_disk({relative_path(ref.path or '')!r}, device=device)"
            )
            self.lines.append(f"{name} = {where}.eval()")
        self.loaded[key] = name
        return name

    def vector(self, i: int, v: SteeringVector, r: ResolvedVector) -> None:
        head = f"# {code_comment(r.label)} × {r.coefficient!r} at {code_comment(r.hook)}"
        self.lines += ["", head + (", where its condition holds" if r.conditional else "")]
        if v.kind == "contrastive":
            self.lines += _assign(f"positive_{i}", v.positive)
            self.lines += _assign(f"negative_{i}", v.negative)
            self.lines.append(
                f"direction_{i} = contrastive(positive_{i}, negative_{i}, {r.hook!r})"
            )
        else:
            d = self.dictionary(r.dictionary)
            w_dec = d if r.dictionary.kind == "transcoder" else f"{d}.W_dec"
            self.lines.append(f"direction_{i} = {w_dec}[{v.index}]  # the latent's decoder row")
        gate = self.gate(i, v.condition, r) if v.condition is not None else "gate=None"
        self.lines += [
            f"vectors.append(SimpleNamespace(hook={r.hook!r}, coefficient={r.coefficient!r},",
            f"                               direction=direction_{i}, {gate}))",
        ]

    def direction(self, i: int, it: DirectionIntervention, d: Direction) -> None:
        """Lines appending saved direction `d` acted on as `it` to ``applied``, resolved as
        ``interventions.resolve`` does: a projection (ablate, cap) uses the direction as the
        residual stream holds it; the hook points from ``hook_points``."""
        how = f"cap to [{it.lo}, {it.hi}]" if it.mode == "cap" else it.mode
        self.lines += ["", f"# saved direction {code_comment(it.name)} ({how}), found at "
                           f"{code_comment(d.hook)}: its unit vector"]  # fmt: skip
        values = [repr(float(x)) for x in d.vector]
        rows = [", ".join(values[k : k + 6]) for k in range(0, len(values), 6)]
        self.lines += [f"saved_{i} = [", *(f"    {row}," for row in rows), "]"]
        self.lines.append(
            f"acted_{i} = torch.tensor(saved_{i}, dtype=torch.float32, device=device)"
        )
        if it.mode != "add":
            self.lines.append(f"acted_{i} = residual_direction(acted_{i}, centred(model))")
        self.lines += [
            f"at_{i} = hook_points({it.mode!r}, {it.layers!r}, {d.hook!r}, model.cfg.n_layers)",
            f"applied.append(Applied({it.name!r}, {it.mode!r}, acted_{i}, at_{i}, "
            f"{it.coeff!r}, {it.lo!r}, {it.hi!r}))",
        ]

    def gate(self, i: int, c: Condition, r: ResolvedVector) -> str:
        """Lines making ``gate_<i>``, the vector's condition; its fields in the vector."""
        if c.probe_hook is not None:  # the unit mean difference of two prompt sets
            self.lines += _assign(f"probe_positive_{i}", c.positive)
            self.lines += _assign(f"probe_negative_{i}", c.negative)
            self.lines += [
                f"probe_{i} = contrastive(probe_positive_{i}, probe_negative_{i}, "
                f"{c.probe_hook!r})",
                f"gate_{i} = Probe({c.probe_hook!r}, probe_{i} / probe_{i}.norm().clamp_min(1e-12))",
            ]
            index = 0
        else:
            g = self.dictionary(r.gate)
            self.lines.append(
                f"gate_{i} = SimpleNamespace(reads={g}.cfg.metadata.hook_name, "
                f"encode=lambda act: {g}.encode(act.to({g}.W_dec.dtype)))  # SAE latent {c.index}"
            )
            index = c.index
        return f"gate=gate_{i}, gate_index={index!r}, threshold={c.threshold!r}"


def kl_bundle(
    request: dict, events: list[StreamEvent], directions: dict[str, Direction] | None = None
) -> BundleSpec | None:
    """The KL figure's bundle from the request the view sent and the stream's events; None
    until the stream has ended well (a stopped or failed one has only part of the steps).
    `directions`: the saved directions the request acts on (``GET /directions/{name}``), by
    name; the snippet holds each one's unit vector and acts on it with the engine's own
    ``interventions`` functions. None (no snippet) when one is missing or gated."""
    start = events[0] if events and events[0].type == "start" else None
    if start is None or events[-1].type != "done":
        return None
    req = SteerRequest.model_validate(request)
    saved = directions or {}
    if any(it.gate is not None or it.name not in saved for it in req.directions):
        return None  # a gated saved direction (or one the view could not read): no snippet
    code = _Code()
    infos = start.vectors or []
    for i, (v, r) in enumerate(zip(req.vectors, infos[: len(req.vectors)], strict=True)):
        code.vector(i, v, r)
    if req.directions:
        code.lines += ["", "applied = []  # saved directions acted on (interventions.Applied)"]
    for i, it in enumerate(req.directions):
        code.direction(i, it, saved[it.name])
    steps = [e for e in events if e.type == "token"]
    base = [e.base for e in steps]
    steered = [e.steered for e in steps]
    settings = (req.max_new_tokens, req.temperature, req.top_k, req.seed, req.stop_at_eos)
    tokens = (
        "prompt_ids = tokens  # [1, pos], BOS first"
        if req.prepend_bos
        else "prompt_ids = torch.tensor([model.tokenizer(PROMPT, add_special_tokens=False)"
        '["input_ids"]], device=device)  # no BOS'
    )
    body = (
        "\n".join(code.imports)
        + "\n"
        + ENGINE
        + (INTERVENTIONS if req.directions else "")
        + _PRELUDE.format(settings=", ".join(map(repr, settings)), tokens=tokens)
        + "\n".join(code.lines)
        + "\n\n"
        + _GENERATE.replace(
            "STEERED_EXTRA", " + hooks(applied, device, dtype)" if req.directions else ""
        )
    )
    return BundleSpec(
        data={
            "kl": Array(("step",), [e.kl for e in steps]),
            "baseline_id": Array(("baseline_token",), [t.id if t else None for t in base]),
            "steered_id": Array(("steered_token",), [t.id if t else None for t in steered]),
        },
        code=body,
        labels={
            "baseline_token": [t.text if t else "" for t in base],
            "steered_token": [t.text if t else "" for t in steered],
        },
        packages=("transformer_lens", *sorted(code.packages)),
    )
