"""Per-layer transcoders for the organism (MLP input -> MLP output), in circuit-tracer's format.

Each layer's transcoder reads what circuit-tracer's replacement model feeds ``mlp.hook_in``
and predicts what leaves ``mlp.hook_out``. The replacement model is built from the model as
``engine.loading.load_model`` loads it (``organism.replacement``), where those two hook
points carry ``blocks.{L}.ln2.hook_normalized`` and ``blocks.{L}.hook_mlp_out``: the
transcoders train on those activations of the engine's model. Training is BatchTopK (mean
``k`` active latents per token, unit-norm decoder rows, an AuxK loss that revives dead
latents); the saved activation is a JumpReLU whose threshold is the learned global BatchTopK
threshold, which ``circuit_tracer`` loads as ``activation_function.threshold``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from jaxtyping import Float, Int
from safetensors.torch import save_file
from torch import Tensor, nn
from transformer_lens import HookedTransformer

from organism.dict_data import Rows, content_mask
from organism.sae import ENGINE_PROCESSING

log = logging.getLogger(__name__)

IN_HOOK = "blocks.{layer}.ln2.hook_normalized"  # = replacement model's blocks.{layer}.mlp.hook_in
OUT_HOOK = "blocks.{layer}.hook_mlp_out"  # = replacement model's blocks.{layer}.mlp.hook_out


@dataclass
class TranscoderSettings:
    d_transcoder: int = 1024
    k: float = 16.0
    training_tokens: int = 3_000_000
    batch_rows: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    decay_frac: float = 0.2  # linear decay to zero over the last part of training
    aux_coef: float = 1 / 32
    dead_after_tokens: int = 100_000
    resample_every: int = 200  # steps between resamplings of dead latents ...
    resample_until: float = 0.7  # ... during this first share of training
    threshold_lr: float = 0.01
    skip: bool = False
    seed: int = 0


class BatchTopKTranscoder(nn.Module):
    """One layer's transcoder while training; `state_for_circuit_tracer` exports it."""

    def __init__(self, d_model: int, d_transcoder: int, skip: bool, out_mean: Tensor) -> None:
        super().__init__()
        w_dec = torch.randn(d_transcoder, d_model)
        self.W_dec = nn.Parameter(w_dec / w_dec.norm(dim=1, keepdim=True))
        # inputs have unit variance per dimension (LayerNorm output): pre-activations start small
        self.W_enc = nn.Parameter(torch.randn(d_transcoder, d_model) * (0.05 / math.sqrt(d_model)))
        self.b_enc = nn.Parameter(torch.zeros(d_transcoder))
        self.b_dec = nn.Parameter(out_mean.clone())
        self.W_skip = nn.Parameter(torch.zeros(d_model, d_model)) if skip else None
        self.register_buffer("threshold", torch.tensor(0.0))
        self.register_buffer("since_fired", torch.zeros(d_transcoder))

    def pre_acts(self, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_tc"]:
        return x @ self.W_enc.T + self.b_enc

    def batch_topk(self, pre: Float[Tensor, "n d_tc"], k: float) -> Float[Tensor, "n d_tc"]:
        flat = torch.relu(pre).flatten()
        n_keep = min(flat.numel(), int(k * pre.shape[0]))
        top = flat.topk(n_keep, sorted=False)
        return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(pre)

    def decode(
        self, acts: Float[Tensor, "n d_tc"], x: Float[Tensor, "n d_model"]
    ) -> Float[Tensor, "n d_model"]:
        out = acts @ self.W_dec + self.b_dec
        return out + x @ self.W_skip.T if self.W_skip is not None else out

    def jumprelu(self, x: Float[Tensor, "n d_model"]) -> Float[Tensor, "n d_tc"]:
        """Inference activations, as circuit-tracer computes them."""
        pre = x @ self.W_enc.T + self.b_enc
        return pre * (pre > self.threshold)

    @torch.no_grad()
    def update_stats(self, acts: Float[Tensor, "n d_tc"], lr: float) -> None:
        positive = acts[acts > 0]
        if positive.numel():
            self.threshold.lerp_(positive.min(), lr)
        fired = (acts > 0).any(0)
        self.since_fired += acts.shape[0]
        self.since_fired[fired] = 0

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def state_for_circuit_tracer(self) -> dict[str, Tensor]:
        state = {
            "W_enc": self.W_enc.detach().contiguous(),
            "W_dec": self.W_dec.detach().contiguous(),
            "b_enc": self.b_enc.detach().contiguous(),
            "b_dec": self.b_dec.detach().contiguous(),
            "activation_function.threshold": self.threshold.expand(self.b_enc.shape).contiguous(),
        }
        if self.W_skip is not None:
            state["W_skip"] = self.W_skip.detach().contiguous()
        return {k: v.float().cpu() for k, v in state.items()}


def aux_loss(
    tc: BatchTopKTranscoder, raw_pre: Tensor, err: Tensor, dead_after: int, out_var: float
) -> Float[Tensor, ""]:
    """AuxK (Gao et al.): the top pre-activations of dead latents reconstruct the error."""
    dead = tc.since_fired > dead_after
    n_dead = int(dead.sum())
    if n_dead == 0:
        return raw_pre.new_zeros(())
    k_aux = min(n_dead, err.shape[-1] // 2)
    scale = min(n_dead / (err.shape[-1] // 2), 1.0)
    top = raw_pre.masked_fill(~dead, -torch.inf).topk(k_aux, dim=-1)
    acts = torch.zeros_like(raw_pre).scatter(-1, top.indices, top.values)
    return scale * ((acts @ tc.W_dec - err) ** 2).sum(-1).mean() / out_var


@torch.no_grad()
def resample_dead(
    tc: BatchTopKTranscoder, opt: torch.optim.Adam, x: Tensor, err: Tensor, dead_after: int
) -> int:
    """Point dead latents at badly reconstructed tokens (decoder = their error); reset Adam."""
    dead = (tc.since_fired > dead_after).nonzero().squeeze(1)
    if dead.numel() == 0:
        return 0
    pick = torch.multinomial((err**2).sum(-1), dead.numel(), replacement=True)
    e, xc = err[pick], (x - x.mean(0))[pick]
    tc.W_dec[dead] = e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)
    # encoder rows as long as the live ones', so a resampled latent competes for the top-k
    alive_norm = tc.W_enc[tc.since_fired <= dead_after].norm(dim=1).mean()
    tc.W_enc[dead] = xc / xc.norm(dim=1, keepdim=True).clamp_min(1e-8) * alive_norm
    tc.b_enc[dead] = 0.0
    tc.since_fired[dead] = 0
    for p in (tc.W_enc, tc.W_dec, tc.b_enc):
        for buf in ("exp_avg", "exp_avg_sq"):
            if buf in opt.state.get(p, {}):
                opt.state[p][buf][dead] = 0.0
    return dead.numel()


def step_loss(
    tc: BatchTopKTranscoder, x: Tensor, y: Tensor, s: TranscoderSettings, out_var: float
) -> tuple[Tensor, dict[str, float]]:
    pre = tc.pre_acts(x)
    acts = tc.batch_topk(pre, s.k)
    y_hat = tc.decode(acts, x)
    mse = ((y_hat - y) ** 2).sum(-1).mean() / out_var
    aux = aux_loss(tc, pre, (y - y_hat).detach(), s.dead_after_tokens, out_var)
    tc.update_stats(acts.detach(), s.threshold_lr)
    return mse + s.aux_coef * aux, {"fvu": mse.item(), "aux": aux.item()}


def lr_factor(s: TranscoderSettings, step: int, n_steps: int) -> float:
    if step < s.warmup_steps:
        return (step + 1) / s.warmup_steps
    decay_start = int(n_steps * (1 - s.decay_frac))
    if step < decay_start:
        return 1.0
    return max(0.0, (n_steps - step) / max(1, n_steps - decay_start))


@torch.no_grad()
def mlp_activations(
    model: HookedTransformer, tokens: Int[Tensor, "b pos"], special_ids: list[int]
) -> list[tuple[Float[Tensor, "n d_model"], Float[Tensor, "n d_model"]]]:
    """(MLP input, MLP output) at content positions, per layer."""
    n_layers = model.cfg.n_layers
    names = {IN_HOOK.format(layer=i) for i in range(n_layers)}
    names |= {OUT_HOOK.format(layer=i) for i in range(n_layers)}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    mask = content_mask(tokens, special_ids)
    return [
        (cache[IN_HOOK.format(layer=i)][mask], cache[OUT_HOOK.format(layer=i)][mask])
        for i in range(n_layers)
    ]


def train_transcoders(
    model: HookedTransformer, rows: Rows, s: TranscoderSettings, special_ids: list[int]
) -> list[BatchTopKTranscoder]:
    """One transcoder per layer, trained together on the same batches of `rows`."""
    torch.manual_seed(s.seed)
    seq = rows.tokens.shape[1]
    n_steps = s.training_tokens // (s.batch_rows * seq)
    first = mlp_activations(model, rows.tokens[: s.batch_rows * 4], special_ids)
    out_vars = [max(1e-6, float(((y - y.mean(0)) ** 2).sum(-1).mean())) for _, y in first]
    tcs = [
        BatchTopKTranscoder(model.cfg.d_model, s.d_transcoder, s.skip, y.mean(0)) for _, y in first
    ]
    opts = [torch.optim.Adam(tc.parameters(), lr=s.lr, betas=(0.9, 0.999)) for tc in tcs]
    n_rows = rows.tokens.shape[0]
    for step in range(n_steps):
        start = (step * s.batch_rows) % max(1, n_rows - s.batch_rows + 1)
        acts = mlp_activations(model, rows.tokens[start : start + s.batch_rows], special_ids)
        stats = []
        for tc, opt, (x, y), var in zip(tcs, opts, acts, out_vars, strict=True):
            for g in opt.param_groups:
                g["lr"] = s.lr * lr_factor(s, step, n_steps)
            loss, info = step_loss(tc, x, y, s, var)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            tc.normalize_decoder()
            stats.append(info["fvu"])
            if (
                step % s.resample_every == s.resample_every - 1
                and step < s.resample_until * n_steps
            ):
                with torch.no_grad():
                    err = y - tc.decode(tc.batch_topk(tc.pre_acts(x), s.k), x)
                n = resample_dead(tc, opt, x, err, s.dead_after_tokens)
                log.info("step %d: resampled %d dead latents", step, n)
        if step % 100 == 0 or step == n_steps - 1:
            dead = [int((tc.since_fired > s.dead_after_tokens).sum()) for tc in tcs]
            log.info(
                "transcoders step %d/%d train fvu %s dead %s",
                step,
                n_steps,
                " ".join(f"{v:.3f}" for v in stats),
                dead,
            )
    return tcs


def save_transcoders(
    tcs: list[BatchTopKTranscoder], out: Path, s: TranscoderSettings, model_name: str
) -> None:
    """Write ``layer_{i}.safetensors`` and a circuit-tracer ``config.yaml`` to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, tc in enumerate(tcs):
        save_file(tc.state_for_circuit_tracer(), str(out / f"layer_{i}.safetensors"))
        files.append(f"layer_{i}.safetensors")
    config = {
        "model_kind": "transcoder_set",
        "model_name": model_name,
        "scan": f"{model_name}-transcoders",
        "feature_input_hook": "mlp.hook_in",
        "feature_output_hook": "mlp.hook_out",
        "transcoders": files,  # relative to this file; organism.replacement resolves them
        "model_processing": dict(ENGINE_PROCESSING),
        "training": asdict(s),
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
