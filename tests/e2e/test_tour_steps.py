"""The built-in tour in a real browser: the first-run welcome starts it, arrow keys step it,
deep links skip the welcome, and after warming every step renders from the engine's cache."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from components import tour
from tests.e2e.pages import LOAD, settle

pytestmark = pytest.mark.browser


def query(page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_welcome_starts_the_tour_and_arrows_step_it(page, app_server):
    t = tour.load(tour.DEFAULT_TOUR)
    n = len(t.steps)
    page.goto(app_server["url"])
    page.get_by_text("Welcome to Interpscope").first.wait_for(timeout=LOAD)
    page.get_by_role("button", name="Start the tour").click()
    page.get_by_text(f"Step 1/{n}").first.wait_for(timeout=60_000)
    settle(page)
    assert query(page)["tour"] == [tour.DEFAULT_TOUR] and query(page)["step"] == ["0"]
    page.get_by_text(t.steps[0].note[:40]).first.wait_for()
    page.keyboard.press("ArrowRight")
    page.get_by_text(f"Step 2/{n}").first.wait_for(timeout=60_000)
    settle(page)
    path, want = tour.split_url(t.steps[1].url)
    assert urlsplit(page.url).path.strip("/") == path
    assert query(page)["prompt"] == want["prompt"] and query(page)["step"] == ["1"]
    page.keyboard.press("ArrowLeft")
    page.get_by_text(f"Step 1/{n}").first.wait_for(timeout=60_000)
    settle(page)
    assert urlsplit(page.url).path.strip("/") == tour.split_url(t.steps[0].url)[0]
    page.get_by_role("button", name="End tour").click()
    settle(page)
    assert "tour" not in query(page) and page.get_by_text(f"Step 1/{n}").count() == 0
    assert page.get_by_text("Welcome to Interpscope").count() == 0  # started once: gone


def test_deep_links_get_no_welcome(page, app_server):
    page.goto(f"{app_server['url']}/?prompt=Once+upon+a+time")
    settle(page)
    assert page.get_by_text("Welcome to Interpscope").count() == 0


def test_warmed_steps_render_from_the_cache(page, app_server):
    t = tour.load(tour.DEFAULT_TOUR)
    page.goto(f"{app_server['url']}/tour")
    settle(page)
    page.get_by_role("button", name="Warm up").first.click()
    done = page.get_by_text("Warm: every step now renders").or_(
        page.get_by_text("Some steps did not render")
    )
    done.first.wait_for(timeout=600_000)
    assert page.get_by_text("Warm: every step now renders").count() == 1, done.first.inner_text()
    stats = f"{app_server['engine_url']}/cache/stats"
    misses = httpx.get(stats, timeout=30).json()["misses"]
    for i, step in enumerate(t.steps):
        page.goto(f"{app_server['url']}/{step.url}&tour={tour.DEFAULT_TOUR}&step={i}")
        settle(page)
        page.get_by_text(f"Step {i + 1}/{len(t.steps)}").first.wait_for()
        after = httpx.get(stats, timeout=30).json()["misses"]
        assert after == misses, f"step {i + 1} ({step.title}) computed something new"
    page.goto(f"{app_server['url']}/dla?prompt=A+prompt+nobody+warmed")  # the counter counts
    settle(page)
    assert httpx.get(stats, timeout=30).json()["misses"] > misses
