"""The Steering and SAE latents pages in a real browser: move a slider, see the steered text
change; open the latents page and a latent's panel."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from components import steering_setup as ss
from tests.e2e.conftest import screenshot
from tests.e2e.pages import LOAD

pytestmark = pytest.mark.browser
PROMPT = "Once upon a time, there was a sad dog named Max."


def steered_text(page) -> str:
    box = page.locator(".steered-out").first
    box.wait_for(timeout=LOAD)
    return box.inner_text()


def wait_done(page) -> None:
    page.get_by_text("tokens/s per continuation").first.wait_for(timeout=LOAD)


def test_slider_changes_the_steered_text(page, app_server):
    setup = {"vectors": [{"kind": "sae_latent", "sae": "blocks.1.hook_resid_post", "index": 0,
                          "coefficient": 0.0}]}  # fmt: skip
    query = f"prompt={quote_plus(PROMPT)}&steer={ss.to_url(setup)}&slen=20&stemp=0"
    page.goto(f"{app_server['url']}/steering?{query}")
    wait_done(page)
    before = steered_text(page)
    assert before == page.locator(".baseline-out").first.inner_text()  # coefficient 0
    thumb = page.get_by_role("slider").first
    thumb.focus()
    thumb.press("End")  # the largest coefficient
    page.wait_for_url(lambda url: "steer=" in url and ss.to_url(setup) not in url, timeout=60_000)
    page.wait_for_function(
        "b => { const e = document.querySelector('.steered-out'); return e && e.innerText !== b; }",
        arg=before, timeout=LOAD,
    )  # fmt: skip
    wait_done(page)
    after = steered_text(page)
    assert after != before and page.locator(".baseline-out").first.inner_text() == before
    screenshot(page, "steering_page", 1600)


def test_add_latent_link_adds_a_vector(page, app_server):
    page.goto(f"{app_server['url']}/steering?prompt={quote_plus(PROMPT)}&add_latent=transcoder:1:3")
    page.get_by_text("transcoder L1 #3").first.wait_for(timeout=LOAD)
    page.wait_for_url(lambda url: "add_latent" not in url and "steer=" in url, timeout=60_000)


def test_latents_page_shows_latents_and_a_panel(page, app_server):
    page.goto(f"{app_server['url']}/latents?prompt={quote_plus(PROMPT)}")
    page.get_by_text("Strongest latents on this prompt").first.wait_for(timeout=LOAD)
    page.get_by_text("Top-activating examples").first.wait_for(timeout=LOAD)
    page.get_by_text("Logit effect").first.wait_for(timeout=LOAD)
    screenshot(page, "latents_page", 3200)


def test_contrastive_sentiment_vector(page, app_server):
    """A happy-minus-sad contrastive vector at layer 0 on a sad opening (the gallery shot)."""
    setup = {"vectors": [{"kind": "contrastive", "hook": "blocks.0.hook_resid_post",
                          "positive": ss.EXAMPLE_POSITIVE.splitlines(),
                          "negative": ss.EXAMPLE_NEGATIVE.splitlines(), "coefficient": 6.0}]}  # fmt: skip
    query = f"prompt={quote_plus(PROMPT)}&steer={ss.to_url(setup)}&slen=40&stemp=0"
    page.goto(f"{app_server['url']}/steering?{query}")
    wait_done(page)
    assert steered_text(page) != page.locator(".baseline-out").first.inner_text()
    page.get_by_text("contrastive × 6").first.wait_for(timeout=30_000)  # the applied vector
    screenshot(page, "steering_sentiment", 1300)


def test_probe_condition_from_the_url(page, app_server):
    probe = {"probe_hook": "blocks.0.hook_resid_post", "threshold": 0.0,
             "positive": ss.EXAMPLE_POSITIVE.splitlines(), "negative": ss.EXAMPLE_NEGATIVE.splitlines()}  # fmt: skip
    setup = {"vectors": [{"kind": "sae_latent", "sae": "blocks.1.hook_resid_post", "index": 0,
                          "coefficient": 20.0, "condition": probe}]}  # fmt: skip
    page.goto(f"{app_server['url']}/steering?prompt={quote_plus(PROMPT)}&steer={ss.to_url(setup)}")
    wait_done(page)
    page.get_by_text("where its condition holds").first.wait_for(timeout=30_000)
    page.get_by_text("Only where a latent (or a probe direction) is active").first.click()
    page.get_by_text("probe: positive prompts").first.wait_for(timeout=30_000)
    screenshot(page, "steering_probe_condition", 1500)


def test_examples_over_a_local_dataset(page, app_server, tmp_path):
    import datasets

    texts = ["Once upon a time, there was a happy cat.", "The capital of France is Paris."]
    datasets.Dataset.from_dict({"story": texts * 3}).save_to_disk(str(tmp_path / "stories"))
    page.goto(f"{app_server['url']}/latents?prompt={quote_plus(PROMPT)}")
    page.get_by_text("Top-activating examples over your texts").first.wait_for(timeout=LOAD)
    page.get_by_text("Dataset", exact=True).click()
    page.get_by_role("textbox", name="Dataset").fill(str(tmp_path / "stories"))
    column = page.get_by_role("textbox", name="Column")
    column.fill("story")
    column.press("Enter")
    page.get_by_role("button", name="Compute examples").click()
    # the job's example set is selected and the latent panel's examples come from it
    page.get_by_text(
        f"{len(texts) * 3} texts of {tmp_path / 'stories'} [train].story"
    ).first.wait_for(timeout=LOAD)
    screenshot(page, "latents_dataset_examples", 3200)
