"""The Probes page in a real browser: run a sweep on the example sentiment sets, see the layer
curve and the verdict, save a direction; then the every-token heatmap."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import screenshot
from tests.e2e.pages import LOAD, page_errors, settle

pytestmark = pytest.mark.browser


def test_a_sweep_runs_shows_its_curve_and_saves_a_direction(page, app_server):
    page.goto(f"{app_server['url']}/probes")
    settle(page)
    page.get_by_role("button", name="Run the sweep").click()
    page.get_by_text("Best probe:").first.wait_for(timeout=LOAD)
    settle(page)
    assert (
        page.get_by_text("Probe vs best single SAE latent").count()
        + page.get_by_text("No SAE reads any of these hook points").count()
        == 1
    )
    assert page.locator(".js-plotly-plot").count() >= 1
    assert not page_errors(page)
    screenshot(page, "probes_page", 1900)
    page.get_by_label("Direction name").fill("mood-probe")
    page.get_by_role("button", name="Save direction").click()
    # the page's own confirmation, naming it (the sidebar's "Saved directions (n)" matches
    # "Saved direction" too, from the start when other tests saved some)
    page.get_by_text("Saved direction mood-probe").first.wait_for(timeout=LOAD)
    saved = httpx.get(f"{app_server['engine_url']}/directions", timeout=10).json()
    assert "mood-probe" in [d["name"] for d in saved]
    sidebar = page.get_by_test_id("stSidebar")
    # the sidebar's list: its label carries the count, so a rerun that has not reached the
    # sidebar yet shows the old label (a stale expander; clicking it opens nothing)
    label = sidebar.get_by_text(f"Saved directions ({len(saved)})").first
    label.wait_for(timeout=LOAD)
    item = sidebar.get_by_text("mood-probe").first
    for _ in range(3):  # a click on an expander a rerun replaced is lost: open it again
        if item.is_visible():
            break
        label.click()
        with contextlib.suppress(PlaywrightTimeoutError):
            item.wait_for(timeout=10_000)
    item.wait_for(timeout=10_000)
    screenshot(page, "probes_saved", 1000)
    # the sweep shown is in the URL: the same view in presenter mode, from the link alone
    assert "probe=" in page.url
    page.goto(page.url + "&present=1")
    page.get_by_text("Best probe:").first.wait_for(timeout=LOAD)
    settle(page)
    assert not page_errors(page)
    screenshot(page, "probes_presenter", 1500)


def test_every_token_shows_a_layer_by_position_heatmap(page, app_server):
    page.goto(f"{app_server['url']}/probes")
    settle(page)
    page.get_by_label("Position").click()
    page.get_by_role("option", name="every token").click()
    page.get_by_role("button", name="Run the sweep").click()
    page.get_by_text("per hook point and position").first.wait_for(timeout=LOAD)
    settle(page)
    assert page.locator(".js-plotly-plot").count() >= 2
    assert not page_errors(page)
    screenshot(page, "probes_heatmap", 2200)
