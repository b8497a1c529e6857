"""Latent books: per-latent top-activating examples, labels and activation histograms.

One implementation for the engine's ``latent_examples`` job (engine/latent_examples.py) and
the organism's build of its shipped examples (organism/latent_examples.py):

- the file format ``interpscope-latent-examples/1``: gzip JSON with ``format``, ``source``,
  ``hook_name``, ``n_rows``, ``n_tokens``, ``top_k``, ``vocab`` (each token id's text),
  optional ``hist_edges``, and ``latents``: one record per latent, ``index``, ``label``,
  ``frequency`` (share of counted tokens where it fires), ``max_act``, optional ``hist``
  (counts per ``HIST_EDGES`` bin of every nonzero activation) and ``examples`` (``tokens``
  and ``acts`` of a window around the maximum, ``max_pos`` in the window, ``row`` and ``pos``
  in the texts, and whatever the writer adds, e.g. the organism's document ``kind``);
- ``TopExamples``, the running collector of those records over rows of activations;
- ``label_latent``, the deterministic labeller of a latent from its examples;
- ``LatentBook``, a file read back for the latent views.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float, Int
from torch import Tensor

from engine.atomic import atomic_write

FORMAT = "interpscope-latent-examples/1"
EXAMPLES_FILE = "latents.json.gz"  # beside a dictionary's weights (a transcoder's: layer_{i}.)
BEFORE, AFTER = 10, 3  # an example's window: tokens before and after its maximum
HIST_EDGES = [round(10 ** (x / 4), 6) for x in range(-12, 13)]  # 1e-3 .. 1e3, log-spaced
N_BINS = len(HIST_EDGES) - 1


def hist_bins(values: Float[Tensor, " n"]) -> Int[Tensor, " n"]:
    """The ``HIST_EDGES`` bin of each positive value (below and above the edges: the ends)."""
    return (4 * values.log10()).floor().long().add(12).clamp(0, N_BINS - 1)


# --- collecting -----------------------------------------------------------------------------
class TopExamples:
    """Per latent, the `k` rows where it fires most (one example per row, at its maximum)
    with the window of activations and tokens around that maximum, a histogram of all its
    nonzero activations, and how often it fires. Rows come in batches (``add``)."""

    def __init__(
        self, k: int, d_latent: int, *, before: int = BEFORE, after: int = AFTER,
        device: str | torch.device = "cpu",
    ) -> None:  # fmt: skip
        w = before + 1 + after
        self.k, self.d, self.w, self.before = k, d_latent, w, before
        self.values = torch.zeros(k, d_latent, device=device)
        self.rows = torch.full((k, d_latent), -1, dtype=torch.long, device=device)
        self.pos = torch.zeros(k, d_latent, dtype=torch.long, device=device)  # in the row
        self.start = torch.zeros(k, d_latent, dtype=torch.long, device=device)  # the window's
        self.win_acts = torch.zeros(k, d_latent, w, device=device)
        self.win_tok = torch.full((k, d_latent, w), -1, dtype=torch.long, device=device)
        self.hist = torch.zeros(d_latent * N_BINS, dtype=torch.long, device=device)
        self.active = torch.zeros(d_latent, dtype=torch.long, device=device)

    def add(self, acts: Float[Tensor, "b pos d"], tokens: Int[Tensor, "b pos"], row0: int) -> None:
        """Rows `row0`, `row0 + 1`, ...: their activations (zeroed where a token does not
        count, e.g. BOS) and tokens."""
        b, seq, _ = acts.shape
        dev = acts.device
        nz = acts > 0
        self.active += nz.sum((0, 1))
        lat = nz.nonzero()[:, 2]
        self.hist.scatter_add_(0, lat * N_BINS + hist_bins(acts[nz]), torch.ones_like(lat))
        best, pos = acts.max(1)  # [b, d]
        start = (pos - self.before).clamp(min=0).clamp(max=max(seq - self.w, 0))
        pad = max(self.w - seq, 0)  # a row shorter than the window: padded with -1 tokens
        acts_p = torch.nn.functional.pad(acts, (0, 0, 0, pad))
        tok_p = torch.nn.functional.pad(tokens, (0, pad), value=-1)
        cols = start[..., None] + torch.arange(self.w, device=dev)  # [b, d, w]
        r = torch.arange(b, device=dev)[:, None, None]
        wa = acts_p[r, cols, torch.arange(self.d, device=dev)[None, :, None]]
        wt = tok_p[r, cols]
        rows = torch.arange(row0, row0 + b, device=dev)[:, None].expand_as(best)
        top = torch.cat([self.values, best]).topk(self.k, dim=0).indices  # [k, d]

        def keep(old: Tensor, new: Tensor) -> Tensor:  # the top-k entries of old + new
            idx = top.view(self.k, self.d, *([1] * (old.dim() - 2)))
            return torch.cat([old, new]).gather(0, idx.expand(-1, -1, *old.shape[2:]))

        self.values = keep(self.values, best)
        self.rows = keep(self.rows, rows)
        self.pos = keep(self.pos, pos)
        self.start = keep(self.start, start)
        self.win_acts = keep(self.win_acts, wa)
        self.win_tok = keep(self.win_tok, wt)

    def records(
        self,
        vocab: list[str],
        n_tokens: int,
        *,
        label: Callable[[list[dict], list[str]], str] | None = None,
        extra: Callable[[int, int], dict] | None = None,
        tick: Callable[[], None] = lambda: None,
    ) -> list[dict]:
        """One JSON-ready record per latent; `n_tokens` counted tokens for the frequency,
        `label` (default ``label_latent``) names each latent, `extra(row, pos)` adds fields
        to an example, `tick` is called every 1024 latents (to cancel)."""
        label = label or label_latent
        vals, rows, pos, start = (t.cpu() for t in (self.values, self.rows, self.pos, self.start))
        wa, wt = self.win_acts.cpu(), self.win_tok.cpu()
        hist, active = self.hist.view(self.d, N_BINS).cpu().tolist(), self.active.cpu().tolist()
        out = []
        for i in range(self.d):
            if i % 1024 == 0:
                tick()
            exs = []
            for e in range(self.k):
                if vals[e, i] <= 0:
                    break
                shown = wt[e, i] >= 0
                row, p = int(rows[e, i]), int(pos[e, i])
                exs.append({"tokens": wt[e, i][shown].tolist(),
                            "acts": [round(a, 3) + 0.0 for a in wa[e, i][shown].tolist()],
                            "max_pos": p - int(start[e, i]), "row": row, "pos": p,
                            **(extra(row, p) if extra else {})})  # fmt: skip
            out.append({"index": i, "label": label(exs, vocab),
                        "frequency": active[i] / max(n_tokens, 1),
                        "max_act": round(float(vals[0, i]), 3), "hist": hist[i],
                        "examples": exs})  # fmt: skip
        return out


# --- labels ---------------------------------------------------------------------------------
TOKEN_SHARE = 0.5  # share of examples that must agree on the max token
SECOND_SHARE = 0.2  # a runner-up token this common is named too


def show(token: str) -> str:
    """A token for a label: quoted, whitespace made visible."""
    return "'" + token.replace("\n", "\\n") + "'"


def word_class(tokens: list[str], classes: Mapping[str, set[str]]) -> str | None:
    """The class in `classes` that most of `tokens` (stripped) belong to, if any."""
    words = [t.strip() for t in tokens]
    for name, members in classes.items():
        if sum(w in members for w in words) / len(words) >= TOKEN_SHARE:
            return name
    return None


def label_latent(
    examples: list[dict],
    vocab: list[str],
    *,
    classes: Mapping[str, set[str]] | None = None,
    context: Callable[[list[dict]], str] | None = None,
) -> str:
    """A short deterministic label naming what the examples share at their maximum: the
    token itself when one dominates (``'Paris'``, with a common runner-up: ``' Mary' /
    ' John'``), else a class of `classes` covering most max tokens, else the token before it
    (``after ' the'``), else the commonest max tokens (``' a', ' the', ' to'…``); then
    `context(examples)` (e.g. the organism's ``in sad stories``). ``dead`` without examples."""
    if not examples:
        return "dead"
    n = len(examples)
    max_tokens = [vocab[ex["tokens"][ex["max_pos"]]] for ex in examples]
    at_max = Counter(max_tokens).most_common(3)
    (tok, count), rest = at_max[0], at_max[1:]
    if count / n >= TOKEN_SHARE:
        part = show(tok)
        if rest and rest[0][1] / n >= SECOND_SHARE:
            part += f" / {show(rest[0][0])}"
    elif cls := word_class(max_tokens, classes or {}):
        part = cls
    else:
        before = [ex for ex in examples if ex["max_pos"] > 0]
        prev = Counter(vocab[ex["tokens"][ex["max_pos"] - 1]] for ex in before).most_common(1)
        if prev and prev[0][1] / n >= TOKEN_SHARE:
            part = f"after {show(prev[0][0])}"
        else:
            part = ", ".join(show(t) for t, _ in at_max) + "…"
    return part + (context(examples) if context else "")


# --- files ----------------------------------------------------------------------------------
def write_doc(path: Path, doc: dict) -> dict:
    """`doc` (``format`` set here) as the compact gzip JSON file, written atomically; the
    document written."""
    doc = {"format": FORMAT, **doc}
    data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6)
    atomic_write(path, data)
    return doc


def read_doc(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


@dataclass
class LatentBook:
    """A latent-examples file read back: its records and `over` (what it was computed over,
    for the views: "shipped examples", "200 texts of ...")."""

    doc: dict
    over: str

    @classmethod
    def read(cls, path: Path, over: str) -> LatentBook:
        return cls(read_doc(path), over)

    @property
    def latents(self) -> list[dict]:
        return self.doc["latents"]

    def record(self, index: int) -> dict | None:
        latents = self.latents
        return latents[index] if index < len(latents) else None

    def label(self, index: int) -> str | None:
        rec = self.record(index)
        return rec["label"] if rec else None
