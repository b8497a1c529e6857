"""Progress and cancel for circuit-tracer's ``attribute``, from inside its phases.

``attribute`` reports progress only to a logger and a tqdm bar it builds itself. Its work is
``setup_attribution`` (phase 0), ``run_forward_pass`` (phase 1), then one
``ctx.compute_batch`` backward pass per batch of logit and latent nodes (phases 3-4). While
``tracking`` is active those three calls on *this* replacement model report to `report`
(fraction, message) before they run; `report` may raise (e.g. ``JobCancelled``), which
stops ``attribute`` between batches and leaves the model without stray hooks (a batch's
hooks are only installed inside the original ``compute_batch``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Report = Callable[[float, str], None]
SETUP, FORWARD, BATCHES = 0.05, 0.10, 0.90  # fraction reached when each stage starts/ends


@contextlib.contextmanager
def tracking(rm, report: Report, *, latent_budget: int, n_logits: int) -> Iterator[None]:
    """Report `attribute`'s progress on `rm`; `latent_budget` caps the latent rows expected."""
    orig_setup, orig_forward = rm.setup_attribution, rm.run_forward_pass
    state = {"done": 0, "expected": latent_budget + n_logits}

    def setup(inputs):
        report(0.0, "phase 0: transcoder activations and error vectors")
        actx = orig_setup(inputs)
        active = int(actx.activation_matrix._nnz())
        state["expected"] = min(latent_budget, active) + n_logits
        _wrap_batches(actx, report, state)
        return actx

    def forward(input_ids, batch_size, actx):
        report(SETUP, "phase 1: forward pass")
        return orig_forward(input_ids, batch_size, actx)

    rm.setup_attribution, rm.run_forward_pass = setup, forward
    try:
        yield
    finally:
        del rm.setup_attribution, rm.run_forward_pass  # back to the class's methods


def _wrap_batches(actx, report: Report, state: dict) -> None:
    orig = actx.compute_batch

    def compute_batch(layers, positions, inject_values, retain_graph: bool = True):
        done, expected = state["done"], max(state["expected"], 1)
        frac = FORWARD + (BATCHES - FORWARD) * min(done / expected, 1.0)
        report(frac, f"backward passes: {done} of {expected} nodes attributed")
        rows = orig(layers, positions, inject_values, retain_graph=retain_graph)
        state["done"] += int(rows.shape[0])
        return rows

    actx.compute_batch = compute_batch
