"""The probe sweep job: at every hook point asked, how well a direction separates two prompt sets.

Prompts come typed (two lists) or from a labelled dataset (engine/text_sources.py's sources,
confined the same way, with a label column). Each prompt is tokenized as the latent examples
job does (BOS first, cut to the context). The activations are read in batches: one forward per
batch with a ``names_filter`` of the hook points, keeping only the rows the position rule
picks ("last" token, "every" token from the first after BOS up to the shortest prompt, or the
last token that "match"es a pattern); the forward stops after the last layer read. The fits are
engine/probes.py's pure functions, run on this job's thread between progress reports.

The result (engine/schemas/probes.py) is cached under the cache directory, keyed by the
model, the prompts and labels, and every parameter of the sweep, with the fitted vectors
beside it, so a direction can be saved from a sweep without shipping its vectors to the app.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine import directions, saes, text_sources, validation
from engine.atomic import atomic_write
from engine.errors import EngineError
from engine.jobs import JobCancelled, JobContext
from engine.schemas.directions import Direction, DirectionInfo
from engine.schemas.probes import (
    MAX_EVERY,
    HookResult,
    ProbeSweepParams,
    ProbeSweepResult,
    SaveDirectionRequest,
)

if TYPE_CHECKING:
    from engine.loading import LoadedModel
    from engine.service import Engine

VERSION = 2  # of the fits and the file: bump to recompute cached sweeps
MAX_ACTIVATION_BYTES = 2 * 2**30  # the picked activations a sweep keeps in memory (float32)


def default_hooks(n_layers: int) -> list[str]:
    """Every layer's residual stream: each block's input, and the last block's output."""
    return [f"blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [
        f"blocks.{n_layers - 1}.hook_resid_post"
    ]


def same_stream(hook: str) -> str:
    """The name an SAE may read the same activation by (resid_post of l is resid_pre of l+1)."""
    if m := re.fullmatch(r"blocks\.(\d+)\.hook_resid_pre", hook):
        return f"blocks.{int(m.group(1)) - 1}.hook_resid_post"
    return hook


def _layer(hook: str) -> int:
    m = re.match(r"blocks\.(\d+)\.", hook)
    return int(m.group(1)) if m else -1


def check(engine: Engine, p: ProbeSweepParams) -> ProbeSweepParams:
    """At submit: a model is loaded, the hooks exist, the source is readable."""
    lm = engine.require_model()
    hooks = p.hooks or default_hooks(lm.model.cfg.n_layers)
    missing = [h for h in hooks if h not in lm.model.hook_dict]
    if missing:
        raise EngineError(422, "unknown_hook",
                          f"{lm.name} has no hook point {missing[0]!r}.")  # fmt: skip
    p = p.model_copy(update={"hooks": list(dict.fromkeys(hooks))})
    for i, text in enumerate([*(p.positive or []), *(p.negative or [])]):
        try:
            validation.check_prompt_text(text)
        except EngineError as e:
            raise EngineError(e.status, e.code, f"Prompt {i + 1}: {e.message}") from None
    if p.dataset:
        p = text_sources.check(p, engine.settings)
    return p


def read_labelled(p: ProbeSweepParams, engine: Engine, tick) -> tuple[list[str], list[int], str]:
    """(texts, labels 1/0, where they came from)."""
    if not p.dataset:
        texts = [*p.positive, *p.negative]
        return texts, [1] * len(p.positive) + [0] * len(p.negative), "typed prompts"
    p = text_sources.check(p, engine.settings)  # again: the files may have changed
    try:
        rows = text_sources._rows(p.dataset, p.split)
        cols = rows.column_names
        for c in (p.column, p.label_column):
            if cols is not None and c not in cols:
                raise EngineError(422, "no_such_column",
                                  f"{p.dataset!r} has no column {c!r}; it has {cols}.")  # fmt: skip
        texts, raw = [], []
        for n, row in enumerate(islice(rows, p.max_texts * 4)):
            if n % 256 == 0:
                tick()
            text = row.get(p.column)
            if not isinstance(text, str):
                raise EngineError(422, "not_text", f"Column {p.column!r} is not text.")
            if text.strip():
                texts.append(text)
                raw.append(str(row.get(p.label_column)))
                if len(texts) == p.max_texts:
                    break
    except EngineError:
        raise
    except (FileNotFoundError, ValueError) as e:
        raise EngineError(404, "no_such_dataset", f"Could not open {p.dataset!r}: {e}") from e
    values = sorted(set(raw))
    if p.positive_label is not None:
        if p.positive_label not in values:
            raise EngineError(422, "no_such_label",
                              f"No row has label {p.positive_label!r}; labels: {values[:20]}.")  # fmt: skip
        positive = p.positive_label
    elif len(values) != 2:
        raise EngineError(422, "not_two_labels",
                          f"Column {p.label_column!r} has {len(values)} values ({values[:20]}): "
                          "name the positive one (positive_label).")  # fmt: skip
    else:
        positive = values[1]
    labels = [int(v == positive) for v in raw]
    return texts, labels, f"{p.dataset} [{p.split}] {p.column} / {p.label_column}={positive}"


def _token_ids(lm: LoadedModel, text: str) -> list[int]:
    tok = lm.model.tokenizer
    ids = tok(text[:20_000], add_special_tokens=False)["input_ids"]
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    return (bos + ids)[: lm.n_ctx]


def _picks(lm: LoadedModel, ids: list[list[int]], p: ProbeSweepParams) -> tuple[list, list]:
    """engine/probes.py's ``pick_positions`` over the prompts' tokens (decoded for "match")."""
    from engine import probes  # scikit-learn: imported by the job, not with the engine

    tok = lm.model.tokenizer
    texts = [[tok.decode([i]) for i in t] if p.position == "match" else [""] * len(t) for t in ids]
    try:
        return probes.pick_positions(texts, p.position, p.pattern, MAX_EVERY)
    except ValueError as e:
        raise EngineError(422, "too_short", f"{e}.") from None


@torch.inference_mode()
def _activations(
    lm: LoadedModel, batch: list[list[int]], picks: list[list[int]], hooks: list[str]
) -> dict[str, np.ndarray]:
    """One forward of a right-padded batch; per hook [batch, picked positions, d] float32.
    Padding on the right changes nothing before it (causal attention, absolute positions)."""
    n = max(len(t) for t in batch)
    pad = lm.model.tokenizer.pad_token_id or 0
    tokens = torch.tensor([t + [pad] * (n - len(t)) for t in batch], device=lm.device)
    names = set(hooks)
    stop = max(_layer(h) for h in hooks) + 1
    store: dict[str, torch.Tensor] = {}
    rows = torch.arange(len(batch), device=lm.device)[:, None]
    cols = torch.tensor(picks, device=lm.device)

    def keep(act: torch.Tensor, hook) -> None:
        store[hook.name] = act[rows, cols].float().cpu()

    fwd = [(h, keep) for h in names]
    if any(_layer(h) < 0 for h in hooks):
        stop = None  # a hook outside the blocks (ln_final, unembed): the whole forward
    with lm.model.hooks(fwd_hooks=fwd):
        lm.model(tokens, stop_at_layer=stop)
    return {h: store[h].numpy() for h in hooks}


def _key(lm: LoadedModel, texts, labels, p: ProbeSweepParams, sae_ids: dict) -> str:
    blob = json.dumps([VERSION, lm.fingerprint, texts, labels, p.position, p.pattern, p.hooks,
                       p.heldout_fraction, p.seed, sorted(sae_ids.items())])  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def store_dir(engine: Engine) -> Path:
    return Path(engine.settings.cache_dir) / "probes"


def _paths(engine: Engine, sweep: str) -> tuple[Path, Path]:
    if not re.fullmatch(r"[0-9a-f]{16}", sweep):
        raise EngineError(404, "unknown_sweep", f"No probe sweep {sweep[:40]!r}.")
    d = store_dir(engine)
    return d / f"{sweep}.json", d / f"{sweep}.npz"


def _saes_at(lm: LoadedModel, hooks: list[str]) -> dict[str, saes.Dictionary]:
    """The first attached SAE reading each hook's activation (under either name)."""
    out = {}
    reg = saes.for_model(lm)
    for d in [reg.get(i.id) for i in reg.infos()]:
        for h in hooks:
            if h not in out and d.reads in (h, same_stream(h)):
                out[h] = d
    return out


def run(engine: Engine, ctx: JobContext, p: ProbeSweepParams) -> dict:
    from engine import probes  # scikit-learn: imported by the job, not with the engine

    lm = engine.require_model()

    def tick() -> None:
        if ctx.cancelled:
            raise JobCancelled()

    ctx.progress(0.0, "reading the prompts")
    texts, labels, where = read_labelled(p, engine, tick)
    hooks = p.hooks or default_hooks(lm.model.cfg.n_layers)
    p = p.model_copy(update={"hooks": hooks})
    at = _saes_at(lm, hooks)
    key = _key(lm, texts, labels, p, {h: d.key for h, d in at.items()})
    meta_path, vec_path = _paths(engine, key)
    if meta_path.is_file() and vec_path.is_file():
        doc = json.loads(meta_path.read_text())
        doc.pop("params", None)  # the prompts: not shipped back with every result
        return {**doc, "cached": True}

    ids = [_token_ids(lm, t) for t in texts]
    picks, positions = _picks(lm, ids, p)
    keep = [i for i, k in enumerate(picks) if k is not None]
    y = np.array([labels[i] for i in keep])
    if min(int(y.sum()), int(len(y) - y.sum())) < 2:
        raise EngineError(422, "too_few_prompts",
                          "Each prompt set needs at least 2 prompts (with a matching token).")  # fmt: skip
    need = len(keep) * max(1, len(positions)) * lm.model.cfg.d_model * len(hooks) * 4
    if need > MAX_ACTIVATION_BYTES:
        raise EngineError(413, "sweep_too_large",
                          f"This sweep would keep {need / 2**30:.1f} GiB of activations (at most "
                          f"{MAX_ACTIVATION_BYTES / 2**30:.0f} GiB): fewer prompts, hook points or "
                          "positions.")  # fmt: skip
    acts: dict[str, list[np.ndarray]] = {h: [] for h in hooks}
    lat: dict[str, list[np.ndarray]] = {h: [] for h in at}
    # batches of alike lengths pad least: `order` lists rows of `keep` by length
    order = sorted(range(len(keep)), key=lambda j: len(ids[keep[j]]))
    for b0 in range(0, len(order), p.batch_size):
        ctx.progress(0.8 * b0 / len(order), f"prompts {b0 + 1}-{min(b0 + p.batch_size, len(order))} of {len(order)}")  # fmt: skip
        rows = [keep[j] for j in order[b0 : b0 + p.batch_size]]
        got = engine.compute(
            _activations, lm, [ids[i] for i in rows], [picks[i] for i in rows], hooks
        )
        for h in hooks:
            acts[h].append(got[h])
        for h, d in at.items():
            lat[h].append(engine.compute(_encode, d, got[h]))
    back = np.argsort(order)  # the rows back in the order of `keep`
    x = {h: np.concatenate(acts[h])[back] for h in hooks}  # [n, positions, d]
    z = {h: np.concatenate(lat[h])[back] for h in at}
    kept_texts = [texts[i] for i in keep]  # a text given twice: both rows on one side
    train, test = probes.split(y, p.heldout_fraction, p.seed, groups=kept_texts)

    results, vectors = [], {}
    cells = [(h, j) for h in hooks for j in range(x[h].shape[1])]
    for n, (h, j) in enumerate(cells):
        ctx.progress(0.8 + 0.2 * n / len(cells), f"fitting {h}" + (f" at {positions[j]}" if positions else ""))  # fmt: skip
        fit = probes.fit_hook(x[h][:, j], y, train, test, p.seed,
                              z[h][:, j] if h in z else None)  # fmt: skip
        pos = positions[j] if positions else None
        lm_ = fit.get("sae_latent")
        results.append(HookResult(
            hook=h, position=pos, diff_of_means=fit["diff_of_means"],
            logistic_probe=fit["logistic_probe"], shuffled=fit["shuffled"],
            thresholds=fit["thresholds"],
            sae_latent=None if lm_ is None else {**lm_, "sae": at[h].info.id},
        ))  # fmt: skip
        for m, v in fit["vectors"].items():
            vectors[f"{h}|{pos}|{m}"] = v.astype(np.float32)
    best = max(results, key=lambda r: (r.logistic_probe.auroc, r.logistic_probe.accuracy))
    first = ids[keep[0]]
    out = ProbeSweepResult(
        sweep=key, cached=False, model=lm.fingerprint, hooks=hooks, position=p.position,
        pattern=p.pattern, positions=positions or None,
        position_tokens=[lm.model.tokenizer.decode([first[i]]) for i in positions] or None,
        n_positive=int(y.sum()), n_negative=int(len(y) - y.sum()), n_train=len(train),
        n_test=len(test), n_dropped=len(texts) - len(keep), n_distinct=len(set(kept_texts)),
        results=results,
        best_hook=best.hook, best_position=best.position, wins=wins(results),
    ).model_dump()  # fmt: skip
    out["source"] = where
    buf = io.BytesIO()
    np.savez(buf, **vectors)
    atomic_write(vec_path, buf.getvalue())
    atomic_write(meta_path, json.dumps({**out, "params": p.model_dump(mode="json")}))
    return out


def wins(results: list[HookResult]) -> dict[str, int]:
    """At how many hook points (and positions) each scorer has the best held-out AUROC."""
    count = {"diff_of_means": 0, "logistic_probe": 0, "shuffled": 0, "sae_latent": 0}
    for r in results:
        scores = {k: getattr(r, k).auroc for k in count if getattr(r, k) is not None}
        count[max(scores, key=scores.get)] += 1
    return count


@torch.inference_mode()
def _encode(d: saes.Dictionary, x: np.ndarray) -> np.ndarray:
    """The SAE's latents of activations [b, positions, d] (float32 on the CPU)."""
    t = torch.from_numpy(x).to(d.W_dec.device, d.W_dec.dtype)
    return d.encode(t).float().cpu().numpy()


def sweep_file(engine: Engine, sweep: str) -> dict:
    """A finished sweep's result and parameters, as cached."""
    meta_path, _ = _paths(engine, sweep)
    if not meta_path.is_file():
        raise EngineError(404, "unknown_sweep",
                          f"No probe sweep {sweep!r} here (it may have been cleared).")  # fmt: skip
    return json.loads(meta_path.read_text())


def vector(engine: Engine, sweep: str, hook: str, method: str, position: int | None) -> np.ndarray:
    """A fitted vector of a finished sweep."""
    _, vec_path = _paths(engine, sweep)
    sweep_file(engine, sweep)
    with np.load(vec_path) as f:
        k = f"{hook}|{position}|{method}"
        if k not in f.files:
            raise EngineError(404, "unknown_vector",
                              f"Sweep {sweep} has no {method} vector at {hook} (position {position}).")  # fmt: skip
        return f[k]


def as_direction(engine: Engine, sweep: str, req: SaveDirectionRequest) -> Direction:
    """A sweep's fitted vector as a ``Direction`` (engine/schemas/directions.py), with where it
    came from and its held-out metrics (and its baselines') at that hook point."""
    lm = engine.require_model()
    doc = sweep_file(engine, sweep)
    if doc["model"] != lm.fingerprint:
        raise EngineError(409, "other_model",
                          f"Sweep {sweep} ran on {doc['model']}, not on the loaded model.")  # fmt: skip
    row = next((r for r in doc["results"]
                if r["hook"] == req.hook and r["position"] == req.position), None)  # fmt: skip
    if row is None:
        raise EngineError(404, "unknown_vector",
                          f"Sweep {sweep} has no result at {req.hook} (position {req.position}).")  # fmt: skip
    v = vector(engine, sweep, req.hook, req.method, req.position)
    metrics = dict(row[req.method])
    metrics |= {f"shuffled_{k}": v_ for k, v_ in row["shuffled"].items()}
    if row.get("sae_latent"):
        metrics |= {"sae_latent_accuracy": row["sae_latent"]["accuracy"],
                    "sae_latent_auroc": row["sae_latent"]["auroc"]}  # fmt: skip
    p = doc.get("params", {})
    sets = {k: p[k][:3] for k in ("positive", "negative") if p.get(k)}
    where = "" if req.position is None else f"-p{req.position}"
    name = req.name or f"{req.method}-{req.hook}{where}-{sweep[:6]}"
    return Direction(
        name=name, hook=req.hook, vector=v.tolist(), metrics=metrics,
        provenance={
            "method": req.method, "sweep": sweep, "inputs_hash": sweep, "source": doc.get("source"),
            "n_positive": doc["n_positive"], "n_negative": doc["n_negative"],
            "prompt_examples": sets, "position_rule": doc["position"], "pattern": doc.get("pattern"),
            "position": req.position, "heldout_fraction": p.get("heldout_fraction"),
            "seed": p.get("seed"),
            "threshold": row.get("thresholds", {}).get(req.method),
        },
    )  # fmt: skip


def save_direction(engine: Engine, sweep: str, req: SaveDirectionRequest) -> DirectionInfo:
    """Save a sweep's vector in the loaded model's direction store (on the model thread)."""
    d = as_direction(engine, sweep, req)
    return engine.compute(lambda: directions.store(engine).save(d))
