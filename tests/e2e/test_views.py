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
