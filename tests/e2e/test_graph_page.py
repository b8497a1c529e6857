"""The Graph page in a real browser: a deep link makes the graph, click a latent, pin it."""

from __future__ import annotations

import re
from urllib.parse import quote_plus

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import screenshot
from tests.e2e.pages import LOAD

pytestmark = pytest.mark.browser
PROMPT = "The capital of France is"

# Page coordinates of the most influential latent node of the graph chart (plotly's own axes).
FIND_LATENT = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
      g => (g.data || []).some(t => t.name === 'latent'));
  if (!gd) return null;
  const t = gd.data.find(t => t.name === 'latent');
  let best = 0;
  t.marker.size.forEach((s, i) => { if (s > t.marker.size[best]) best = i; });
  const L = gd._fullLayout, box = gd.getBoundingClientRect();
  return {id: t.customdata[best],
          x: box.left + L._size.l + L.xaxis.l2p(t.x[best]),
          y: box.top + L._size.t + L.yaxis.l2p(t.y[best])};
}"""


def test_graph_page_generate_click_pin(page, app_server):
    page.goto(f"{app_server['url']}/graph?prompt={quote_plus(PROMPT)}&graph=auto")
    page.get_by_text("Saved graphs (this model)").first.wait_for(timeout=LOAD)  # engine started
    caps = httpx.get(f"{app_server['engine_url']}/capabilities", timeout=60).json()
    if not caps["features"]["transcoders"]["available"]:
        pytest.skip("the demo model has no transcoders")
    page.wait_for_url(re.compile(r"graph=organism-transcoder-"), timeout=LOAD)
    page.get_by_text("Click a node to see it here").first.wait_for(timeout=60_000)
    for _ in range(3):  # a rerun may redraw the chart under the first click
        page.wait_for_timeout(1500)
        target = page.evaluate(FIND_LATENT)
        assert target is not None, "no latent nodes drawn"
        page.mouse.click(target["x"], target["y"])
        try:
            page.wait_for_url(re.compile(r"gnode="), timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    assert f"gnode={target['id']}" in page.url
    steer = page.get_by_role("link", name="Steer with this latent")
    steer.wait_for(timeout=30_000)
    layer, index, _ = target["id"].split("_")  # a latent node id: <layer>_<index>_<pos>
    assert f"add_latent=transcoder%3A{layer}%3A{index}" in steer.get_attribute("href")
    page.get_by_role("button", name="Pin", exact=True).click()
    page.wait_for_url(re.compile(r"pinned="), timeout=30_000)
    page.get_by_role("button", name="Unpin", exact=True).first.wait_for(timeout=30_000)
    slug = re.search(r"graph=([a-z0-9-]+)", page.url).group(1)
    doc = httpx.get(f"{app_server['engine_url']}/graphs/{slug}", timeout=30).json()
    assert target["id"] in doc["qParams"]["pinnedIds"]  # kept in the graph file too
    assert screenshot(page, "graph_page", 1700).stat().st_size > 30_000


def test_component_graph_with_a_supernode_from_the_file(page, app_server):
    """A component graph built with the page's form; a supernode written into its qParams
    over the API shows when the graph is opened again (the file's qParams carry over)."""
    clean = "When Mary and John went to the store, John gave a drink to"
    page.goto(f"{app_server['url']}/graph?prompt={quote_plus(clean)}")
    page.get_by_text("Saved graphs (this model)").first.wait_for(timeout=LOAD)
    page.get_by_text("Components (attribution patching)").click()
    box = page.get_by_label("Corrupted prompt (same number of tokens)")
    box.wait_for(timeout=30_000)
    box.fill(clean.replace(", John gave", ", Mary gave"))
    page.get_by_label("Target token (·Paris or #123)").fill("·Mary")
    page.get_by_label("Minus baseline token (optional)").fill("·John")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Build component graph").click()
    page.wait_for_url(re.compile(r"graph=organism-component-"), timeout=60_000)
    page.get_by_text("Component graph (attribution patching)").first.wait_for(timeout=60_000)
    slug = re.search(r"graph=([a-z0-9-]+)", page.url).group(1)
    engine = app_server["engine_url"]
    doc = httpx.get(f"{engine}/graphs/{slug}", timeout=30).json()
    assert doc["metadata"]["info"]["corrupted"].endswith("Mary gave a drink to")
    heads = sorted((n for n in doc["nodes"] if n["feature_type"] == "attention head"),
                   key=lambda n: n["influence"])[:2]  # fmt: skip
    ids = [n["node_id"] for n in heads]
    q = {"pinnedIds": ids, "supernodes": [["movers", *ids]], "clickedId": ""}
    assert httpx.put(f"{engine}/graphs/{slug}/qparams", json=q).status_code == 200
    page.goto(f"{app_server['url']}/graph?prompt={quote_plus(clean)}&graph={slug}")
    page.get_by_text("Component graph (attribution patching)").first.wait_for(timeout=60_000)
    page.locator("text.annotation-text", has_text="movers").first.wait_for(timeout=30_000)
    page.wait_for_url(re.compile(r"pinned="), timeout=30_000)
    assert screenshot(page, "graph_components_page", 1500).stat().st_size > 30_000
