"""The bundle of the Probes view's figures: the held-out metrics of every scorer at every hook
point (and position), and a snippet that recomputes them with TransformerLens, SAELens and
scikit-learn, running engine/probes.py's own functions (their source, read by
``components.engine_source``: the position rule, the split, the fits, the metrics).

The snippet reads one prompt at a time without padding (the engine batches, right-padded: the
same activations up to float rounding), picks the positions as the engine does, and encodes with
the SAE the sweep used where it is a SAELens directory (the model's own, or a local one).
"""

from __future__ import annotations

import json
import re
import textwrap

from components.bundles import Array, BundleSpec
from components.engine_source import engine_source
from components.probe_figures import SCORERS, score
from components.snippets import relative_path
from engine.schemas.probes import ProbeSweepParams, ProbeSweepResult

ENGINE = engine_source(
    (
        "engine.probes",
        ("PROBE_C", "PROBE_MAX_ITER", "pick_positions", "split", "threshold", "metrics",
         "diff_of_means", "fit_probe", "probe_direction", "shuffled", "latent_aurocs",
         "best_latent", "fit_hook"),
    ),
)  # fmt: skip
METRICS = ("accuracy", "auroc")
HOOK_NAME = re.compile(r"blocks\.\d+\.hook_\w+")

_SOURCE_TYPED = """
POSITIVE = {positive}
NEGATIVE = {negative}
texts = POSITIVE + NEGATIVE
labels = np.array([1] * len(POSITIVE) + [0] * len(NEGATIVE))
"""

_SOURCE_DATASET = """
import os

import datasets

DATASET, SPLIT, COLUMN, LABEL_COLUMN, POSITIVE_LABEL, MAX_TEXTS = {args}
FORMATS = {{".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}}
if os.path.isdir(DATASET):
    rows = datasets.load_from_disk(DATASET)
    rows = rows[SPLIT] if isinstance(rows, datasets.DatasetDict) else rows
elif os.path.isfile(DATASET):
    rows = datasets.load_dataset(FORMATS[os.path.splitext(DATASET)[1]], data_files=DATASET, split=SPLIT)
else:
    rows = datasets.load_dataset(DATASET, split=SPLIT, streaming=True)
texts, raw = [], []
for row in rows:  # the first MAX_TEXTS rows with text, as the engine reads them
    if isinstance(row[COLUMN], str) and row[COLUMN].strip():
        texts.append(row[COLUMN])
        raw.append(str(row[LABEL_COLUMN]))
        if len(texts) == MAX_TEXTS:
            break
positive = POSITIVE_LABEL if POSITIVE_LABEL is not None else sorted(set(raw))[1]
labels = np.array([int(v == positive) for v in raw])
"""

_RUN = """
HOOKS = {hooks}
RULE, PATTERN, HELDOUT, SEED, MAX_EVERY = {rule}
SAES = {saes}  # hook point -> SAELens directory of the SAE the sweep used there

ids = [model.to_tokens(t)[0, : model.cfg.n_ctx].tolist() for t in texts]  # BOS first
token_texts = [[model.tokenizer.decode([i]) for i in t] for t in ids]
picks, positions = pick_positions(token_texts, RULE, PATTERN, MAX_EVERY)
keep = [i for i, k in enumerate(picks) if k is not None]  # "match": prompts with a match
y = labels[keep]
acts = {{h: [] for h in HOOKS}}
for i in keep:  # one prompt at a time, its activations at the picked positions
    _, c = model.run_with_cache(torch.tensor([ids[i]]), names_filter=lambda n: n in HOOKS)
    for h in HOOKS:
        acts[h].append(c[h][0, picks[i]].float().cpu().numpy())
x = {{h: np.stack(v) for h, v in acts.items()}}  # [prompt, position, d_model]
saes = {{h: SAE.load_from_disk(p, device=str(model.cfg.device)) for h, p in SAES.items()}}
train, test = split(y, HELDOUT, SEED)
fits = []
for h in HOOKS:
    row = []
    for j in range(x[h].shape[1]):
        z = None
        if h in saes:
            z = saes[h].encode(torch.from_numpy(x[h][:, j]).to(str(model.cfg.device))).float().cpu().numpy()
        row.append(fit_hook(x[h][:, j], y, train, test, SEED, z))
    fits.append(row)
SCORERS = {scorers}
data = {{
    metric: [[[f[s][metric] if s in f else None for f in row] for row in fits] for s in SCORERS]
    for metric in {metrics}
}}
"""


def sae_dirs(result: ProbeSweepResult, model_ref: str | None) -> dict[str, str]:
    """Hook point -> the SAELens directory of the SAE the sweep used there, where the snippet
    can load it: the model's own (``<model>/saes/<hook>``) or a local directory."""
    out = {}
    for r in result.results:
        s = r.sae_latent
        if not s or r.hook in out:
            continue
        if s.sae.startswith("/"):
            out[r.hook] = relative_path(s.sae)
        elif HOOK_NAME.fullmatch(s.sae) and model_ref:
            out[r.hook] = f"{model_ref}/saes/{s.sae}"
    return out


def spec(
    result: ProbeSweepResult, params: ProbeSweepParams, model_ref: str | None = None
) -> BundleSpec:
    """The bundle of a sweep's figures: metric x scorer x hook x position."""
    positions = result.positions or [None]
    cell = {(r.hook, r.position): r for r in result.results}
    scorers = list(SCORERS)
    saes = sae_dirs(result, model_ref)

    def value(h: str, p: int | None, s: str, m: str) -> float | None:
        if s == "sae_latent" and h not in saes:  # an SAE the snippet cannot load: left out
            return None
        return score(cell[h, p], s, m)

    data = {
        m: Array(("scorer", "hook", "position"),
                 [[[value(h, p, s, m) for p in positions] for h in result.hooks] for s in scorers])
        for m in METRICS
    }  # fmt: skip
    if params.dataset:
        args = (relative_path(params.dataset), params.split, params.column, params.label_column,
                params.positive_label, params.max_texts)  # fmt: skip
        source = _SOURCE_DATASET.format(args=repr(args))
    else:
        source = _SOURCE_TYPED.format(
            positive=json.dumps(params.positive, indent=1),
            negative=json.dumps(params.negative, indent=1),
        )
    rule = (result.position, result.pattern, params.heldout_fraction, params.seed, 32)
    code = (
        "import numpy as np\nfrom sae_lens import SAE\n"
        + ENGINE
        + textwrap.dedent(source)
        + _RUN.format(
            hooks=json.dumps(result.hooks),
            rule=repr(rule),
            saes=repr(saes),
            scorers=repr(scorers),
            metrics=repr(METRICS),
        )  # fmt: skip
    )
    labels = {
        "scorer": [SCORERS[s][0] for s in scorers],
        "hook": list(result.hooks),
        "position": ["(rule)" if p is None else str(p) for p in positions],
    }
    return BundleSpec(data=data, code=code, labels=labels,
                      packages=("transformer_lens", "sae_lens", "scikit-learn"))  # fmt: skip
