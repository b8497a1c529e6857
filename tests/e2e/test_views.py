"""The Attention, Logit lens and DLA pages in a real browser: open, click a head or cell, look."""

from __future__ import annotations

import re
from urllib.parse import quote_plus

import httpx
import pytest

from tests.e2e.conftest import screenshot
from tests.e2e.pages import LOAD

pytestmark = pytest.mark.browser
PROMPT = "When Mary and John went to the store, John gave a drink to Mary"


def model_info(app_server) -> dict:
    return httpx.get(f"{app_server['engine_url']}/capabilities", timeout=30).json()["model"]


def open_page(page, app_server, path: str, wait_text: str, query: str = "") -> None:
    page.goto(f"{app_server['url']}/{path}?prompt={quote_plus(PROMPT)}{query}")
    page.get_by_text(wait_text).first.wait_for(timeout=LOAD)
    page.wait_for_timeout(500)


def click_cell(page, chart: int, col: int, row: int, n_cols: int, n_rows: int) -> None:
    """Click cell (col, row) of the `chart`-th plotly chart (row 0 at the top)."""
    area = page.locator(".js-plotly-plot .nsewdrag").nth(chart)
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    page.mouse.click(
        box["x"] + box["width"] * (col + 0.5) / n_cols,
        box["y"] + box["height"] * (row + 0.5) / n_rows,
    )


def test_attention_page_click_a_head(page, app_server):
    open_page(page, app_server, "attention", "score of each head")
    m = model_info(app_server)
    layer, head = m["n_layers"] - 1, m["n_heads"] - 1
    click_cell(page, 0, head, layer, m["n_heads"], m["n_layers"])
    page.wait_for_url(re.compile(rf"layer={layer}&head={head}"), timeout=30_000)
    page.get_by_text(f"All heads of layer {layer}").first.wait_for(timeout=30_000)
    title = page.locator("text.annotation-text", has_text=f"L{layer}H{head}")
    title.first.wait_for(timeout=30_000)  # the pattern of the clicked head
    frame = page.frame_locator("iframe").first
    frame.locator("#cv *").first.wait_for(timeout=30_000)  # circuitsvis rendered, offline
    assert screenshot(page, "attention_page", 3000).stat().st_size > 30_000


def test_attention_compare_two_heads(page, app_server):
    open_page(page, app_server, "attention", "score of each head", "&layer=0&head=1&compare=1.2")
    page.get_by_text("Attention pattern (side by side)").first.wait_for(timeout=30_000)
    titles = page.locator("text.annotation-text")
    titles.filter(has_text="L1H2").first.wait_for(timeout=30_000)
    assert titles.filter(has_text="L0H1").count() == 1


def test_logit_lens_page_click_a_cell(page, app_server):
    open_page(page, app_server, "logit_lens", "Logit lens (resid_post)")
    m = model_info(app_server)
    n = len(
        httpx.post(f"{app_server['engine_url']}/tokenize", json={"prompt": PROMPT}).json()["tokens"]
    )
    click_cell(page, 0, 3, 0, n, m["n_layers"])
    page.wait_for_url(re.compile(r"pos=3"), timeout=30_000)
    page.get_by_text("Lens trajectory at pos 3").first.wait_for(timeout=30_000)
    assert screenshot(page, "logit_lens_page", 1800).stat().st_size > 30_000


def test_dla_page_click_a_head(page, app_server):
    open_page(page, app_server, "dla", "Direct effect of each head")
    m = model_info(app_server)
    click_cell(page, 0, 1, 0, m["n_heads"], m["n_layers"])
    page.wait_for_url(re.compile(r"layer=0&head=1"), timeout=30_000)
    assert screenshot(page, "dla_page", 1400).stat().st_size > 30_000


LONG = " ".join([PROMPT + "."] * 6)  # ~100 tokens: longer than every figure's window


def test_moving_the_position_window(page, app_server):
    """On a prompt longer than the window, the slider moves what the pattern and the logit
    lens draw, and the window start is in the URL (shared by both pages)."""
    page.goto(f"{app_server['url']}/attention?prompt={quote_plus(LONG)}&wstart=20")
    page.get_by_text("the whole prompt").first.wait_for(timeout=LOAD)  # the overview
    ticks = page.locator(".js-plotly-plot").nth(1).locator(".ytick text")
    ticks.filter(has_text=re.compile(r"^20:")).first.wait_for(timeout=30_000)
    assert ticks.filter(has_text=re.compile(r"^59:")).count() == 1  # [20, 60)
    assert ticks.filter(has_text=re.compile(r"^0:")).count() == 0
    slider = page.get_by_role("slider").first
    slider.focus()
    page.keyboard.press("Home")  # the window to the prompt's start
    page.wait_for_url(re.compile(r"wstart=0"), timeout=30_000)
    ticks.filter(has_text=re.compile(r"^0:")).first.wait_for(timeout=30_000)
    assert ticks.filter(has_text=re.compile(r"^59:")).count() == 0  # [0, 40)
    page.wait_for_timeout(1000)
    screenshot(page, "attention_page_window", 2400)
    overview = page.locator(".js-plotly-plot .nsewdrag").nth(2)  # the whole prompt
    box = overview.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.95, box["y"] + box["height"] * 0.95)
    page.wait_for_url(re.compile(r"wstart=62"), timeout=30_000)  # the end: [62, 102)
    ticks.filter(has_text=re.compile(r"^101:")).first.wait_for(timeout=30_000)
    page.goto(f"{app_server['url']}/logit_lens?prompt={quote_plus(LONG)}&wstart=30")
    page.get_by_text("Logit lens (resid_post)").first.wait_for(timeout=LOAD)
    lens_ticks = page.locator(".js-plotly-plot").first.locator(".xtick text")
    lens_ticks.filter(has_text=re.compile(r"^30:")).first.wait_for(timeout=30_000)
    assert lens_ticks.filter(has_text=re.compile(r"^29:")).count() == 0
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_url(re.compile(r"wstart=31"), timeout=30_000)
    lens_ticks.filter(has_text=re.compile(r"^50:")).first.wait_for(timeout=30_000)
    assert screenshot(page, "logit_lens_page_window", 1800).stat().st_size > 30_000
