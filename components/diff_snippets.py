"""The bundles of the diff figures (issue 14): their data as arrays, and a snippet that loads
both models (or runs both prompts) and recomputes it with the engine's own functions (their
source, read by ``components.engine_source``)."""

from __future__ import annotations

from components.bundles import BundleSpec
from components.compare import Comparison


def kl_tokens(result: dict, cmp: Comparison) -> BundleSpec | None:
    return None


def changed_predictions(result: dict, i: int, cmp: Comparison) -> BundleSpec | None:
    return None


def resid_norms(result: dict, cmp: Comparison) -> BundleSpec | None:
    return None


def diff_lens(result: dict, cmp: Comparison) -> BundleSpec | None:
    return None


def latents(result: dict, rows: list[dict], cmp: Comparison) -> BundleSpec | None:
    return None


def adiff_lens(result: dict) -> BundleSpec | None:
    return None


def latent_set(result: dict, rows: list[dict]) -> BundleSpec | None:
    return None


def components(result: dict, cmp: Comparison) -> BundleSpec | None:
    return None


def pattern_diff(layer: int, head: int, start: int, a: dict, b: dict, cmp: Comparison):
    return None


def generation(body: dict, events: list[dict], cmp: Comparison) -> BundleSpec | None:
    return None
