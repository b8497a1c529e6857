"""The Directions page in a real browser: a saved sentiment direction (happy minus sad stories'
mean activation, saved through the engine's API) is added and ablated with the generations
with and without it side by side, measured over a sweep (the figure), exported as an
orthogonalised model, and opened on the Steering page."""

from __future__ import annotations

import random
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from engine.client import EngineClient
from tests.e2e.conftest import screenshot
from tests.e2e.pages import LOAD

pytestmark = pytest.mark.browser
PROMPT = "Once upon a time, there was a sad dog named Max."
HOOK = "blocks.1.hook_resid_pre"
OPENINGS = """Once upon a time, there was a sad girl named Lily.
Once upon a time, there was a gloomy dog named Max.
Once upon a time, there was a lonely cat named Emma.
Once upon a time, there was a sad boy named Tom."""


def sentiment_vector(model_dir: Path, hook: str = HOOK) -> list[float]:
    from engine import steering
    from engine.loading import load_model
    from organism import corpus

    lm = load_model(str(model_dir))
    rng = random.Random(1)
    happy = [corpus.make_story(rng, "happy") for _ in range(12)]
    sad = [corpus.make_story(rng, "sad") for _ in range(12)]
    d = steering.mean_activation(lm, happy, hook) - steering.mean_activation(lm, sad, hook)
    return d.tolist()


def texts(page) -> tuple[str, str]:
    a, b = page.locator(".dir-without").first, page.locator(".dir-with").first
    b.wait_for(timeout=LOAD)
    return a.inner_text(), b.inner_text()


def test_directions_page_main_flow(page, app_server, demo_model_dir):
    url = f"{app_server['url']}/directions?prompt={quote_plus(PROMPT)}"
    page.goto(url)  # starts the engine
    page.get_by_text("Directions").first.wait_for(timeout=LOAD)
    client = EngineClient(app_server["engine_url"])
    client.save_direction({"name": "sentiment", "hook": HOOK,
                           "vector": sentiment_vector(demo_model_dir),
                           "provenance": {"method": "diff_of_means"},
                           "metrics": {"heldout_accuracy": 1.0}})  # fmt: skip
    client.save_direction({"name": "sentiment0", "hook": "blocks.0.hook_resid_pre",
                           "vector": sentiment_vector(demo_model_dir, "blocks.0.hook_resid_pre"),
                           "provenance": {"method": "diff_of_means"}})  # fmt: skip
    page.goto(url + "&dir=sentiment")  # named: other tests' saved directions may sort first
    try:
        page.get_by_text("Act on it").first.wait_for(timeout=90_000)
    finally:
        screenshot(page, "directions_debug", 1200)
    page.wait_for_function(
        "() => { const a = document.querySelector('.dir-without'), "
        "b = document.querySelector('.dir-with'); return a && b && b.innerText.length > 60 "
        "&& a.innerText.length > 60 && a.innerText !== b.innerText; }",
        timeout=90_000,
    )  # add × 4 at its own hook point: the mood changes
    without, with_ = texts(page)
    assert without.startswith(PROMPT) and with_.startswith(PROMPT) and without != with_
    screenshot(page, "directions_add", 1200)

    page.get_by_text("Ablate (project out)").click()
    page.get_by_text("ablate sentiment × 1 at every layer").first.wait_for(timeout=LOAD)
    # a second direction of the concept (another layer's), ablated together: their span
    page.get_by_role("combobox", name="Ablate together with").click()
    page.get_by_role("option", name="sentiment0").click()
    page.keyboard.press("Escape")
    page.get_by_text("ablate sentiment0 × 1 at every layer").first.wait_for(timeout=LOAD)
    screenshot(page, "directions_together", 1200)

    page.get_by_label("Held-out prompts (one per line)").fill(OPENINGS)
    page.get_by_label("Harmless prompts, for the KL").fill(OPENINGS)
    page.get_by_label("Keywords (comma-separated, any of them)").fill("sad, gloomy, lonely, cried")
    page.get_by_role("button", name="Measure").click()
    page.get_by_text("rate and harmless KL").first.wait_for(timeout=LOAD)
    screenshot(page, "directions_sweep", 2200)

    page.get_by_role("button", name="Export orthogonalised model").click()
    page.get_by_text("weights orthogonalised").first.wait_for(timeout=LOAD)
    shown = page.locator("code").filter(has_text="orthogonalised").first.inner_text()
    assert (Path(shown.strip()) / "config.json").is_file()
    assert (Path(shown.strip()) / "model.safetensors").is_file()
    note = (Path(shown.strip()) / "orthogonalised.json").read_text()
    assert '"also"' in note and "sentiment0" in note  # the span of both, in the weights

    page.get_by_role("button", name="Open on the Steering page").click()
    try:
        page.get_by_text("ablate sentiment × 1 at every layer").first.wait_for(timeout=90_000)
        page.get_by_text("ablate sentiment0 × 1 at every layer").first.wait_for(timeout=90_000)
        page.get_by_text("tokens/s per continuation").first.wait_for(timeout=90_000)
    finally:
        screenshot(page, "directions_on_steering", 1200)
    assert "steer=" in page.url
