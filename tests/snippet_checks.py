"""Running a figure bundle's snippet.py as a user would, and comparing its numbers with the
bundle's (shared by the bundle tests)."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import torch

from components import bundles
from engine.launcher import REPO_ROOT


def run_snippet(spec: bundles.BundleSpec, engine, prompt: str, tmp_path: Path) -> dict:
    """Write the snippet the bundle would hold (header included) and run it as a script; its
    `data`."""
    info = engine.model_info().model_dump()
    code = bundles.snippet(bundles.ModelRef.from_info(info, REPO_ROOT), prompt, spec, "test")
    path = tmp_path / "snippet.py"
    path.write_text(code)
    grad = torch.is_grad_enabled()  # the snippet turns gradients off for its own process
    try:
        return runpy.run_path(str(path), run_name="snippet")["data"]
    finally:
        torch.set_grad_enabled(grad)


def assert_same_numbers(got, want, what: str = "") -> None:
    """`got` equals `want` to float32 round-off: relative 1e-5, and absolute 1e-5 of the
    array's largest magnitude (for the entries near 0); None (undefined) must match None."""
    want = torch.tensor(np.array(want, dtype=np.float64))  # None -> nan
    got = torch.tensor(np.array(got, dtype=np.float64))
    finite = want[want.isfinite()]
    scale = float(finite.abs().max()) if finite.numel() else 1.0
    torch.testing.assert_close(
        got, want, rtol=1e-5, atol=1e-5 * scale, equal_nan=True, msg=lambda m: f"{what}: {m}"
    )


def assert_recomputes(spec: bundles.BundleSpec, data: dict) -> None:
    for key, array in spec.data.items():
        assert_same_numbers(data[key], array.values, key)
