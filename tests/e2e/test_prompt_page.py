"""The Prompt page in a real browser: type a prompt, see predictions, survive an engine kill."""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.e2e.pages import LOAD, settle

pytestmark = pytest.mark.browser


def type_prompt(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Prompt")
    box.fill(text)
    box.press("Control+Enter")


def n_tokens(app_server, prompt: str) -> int:
    r = httpx.post(f"{app_server['engine_url']}/tokenize", json={"prompt": prompt}, timeout=30)
    return len(r.json()["tokens"])


def test_deep_link_works_on_a_fresh_server(page, app_server):
    """The session's first request is a deep link to a view (runs before any other test)."""
    page.goto(app_server["url"] + "/attention?prompt=Once+upon+a+time&layer=1")
    page.get_by_role("heading", name="Attention", exact=True).first.wait_for(timeout=LOAD)
    expect(page.get_by_role("textbox", name="Prompt")).to_have_value(
        "Once upon a time", timeout=15_000
    )


def test_type_prompt_and_see_predictions(page, app_server):
    page.goto(app_server["url"])
    page.get_by_text("Top-5 next-token predictions").first.wait_for(timeout=LOAD)
    type_prompt(page, "The capital of France is")
    n = n_tokens(app_server, "The capital of France is")
    page.get_by_text(f"{n} tokens (BOS first)").first.wait_for(timeout=30_000)
    page.get_by_text(f"After position {n - 1}").first.wait_for(timeout=30_000)
    assert re.search(r"prompt=The\+capital\+of\+France\+is", page.url)
    # While Streamlit reruns, the previous run's table can linger beside the new one: wait until
    # the run is over and exactly one predictions table is left.
    settle(page)
    expect(page.locator("[data-testid='stDataFrame']")).to_have_count(1, timeout=30_000)
    path = screenshot(page, "prompt_page")
    assert path.stat().st_size > 20_000


def test_url_state_restores_the_view(page, app_server):
    page.goto(app_server["url"] + "/?prompt=Once+upon+a+time&pos=2")
    page.get_by_text("After position 2").first.wait_for(timeout=LOAD)
    expect(page.get_by_role("textbox", name="Prompt")).to_have_value(
        "Once upon a time", timeout=15_000
    )


def test_engine_killed_mid_session_recovers(page, app_server):
    page.goto(app_server["url"])
    page.get_by_text("Top-5 next-token predictions").first.wait_for(timeout=LOAD)
    health = httpx.get(f"{app_server['engine_url']}/health", timeout=5).json()
    os.kill(health["pid"], 9)
    time.sleep(0.5)
    type_prompt(page, "When Mary and John went to the park")
    page.get_by_text("The engine restarted").first.wait_for(timeout=LOAD)
    n = n_tokens(app_server, "When Mary and John went to the park")
    page.get_by_text(f"After position {n - 1}").first.wait_for(timeout=60_000)
    screenshot(page, "engine_restarted")
    new = httpx.get(f"{app_server['engine_url']}/health", timeout=5).json()
    assert new["engine_id"] != health["engine_id"]
