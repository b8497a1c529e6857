"""Offline guarantee: every page, in both modes, with a few interactions, makes no request
that leaves the machine. Every request (HTTP and WebSocket) whose host is not loopback is
aborted and recorded; the test fails if any was made."""

from __future__ import annotations

import re
import zipfile
from urllib.parse import urlsplit

import pytest

from tests.e2e.pages import app_pages, page_errors, settle, view_url

pytestmark = pytest.mark.browser
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _leaves_machine(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
        return False
    return (parts.hostname or "") not in LOOPBACK


@pytest.fixture
def guarded(browser):
    """A page whose context aborts and records every request that would leave the machine."""
    leaks: list[str] = []
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)

    def on_route(route):
        if _leaves_machine(route.request.url):
            leaks.append(f"{route.request.resource_type} {route.request.url}")
            route.abort("internetdisconnected")
        else:
            route.continue_()

    def on_websocket(ws):
        if _leaves_machine(ws.url):
            leaks.append(f"websocket {ws.url}")
            ws.close()
        else:
            ws.connect_to_server()

    ctx.route("**/*", on_route)
    ctx.route_web_socket(re.compile(".*"), on_websocket)
    page = ctx.new_page()
    page.on("request", lambda r: _leaves_machine(r.url) and leaks.append(f"seen {r.url}"))
    yield page, leaks
    ctx.close()


def test_streamlit_sends_no_usage_stats():
    import tomllib

    from engine.launcher import REPO_ROOT

    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False


def test_guard_records_a_request_that_leaves_the_machine(guarded, app_server):
    """The guard itself works: a page that asks for a CDN script gets it recorded."""
    page, leaks = guarded
    page.goto(f"{app_server['url']}/_stcore/health")
    page.set_content('<script src="https://cdn.jsdelivr.net/npm/x.js"></script>')
    page.wait_for_timeout(500)
    assert any("cdn.jsdelivr.net" in leak for leak in leaks)


def test_every_page_in_both_modes_stays_on_this_machine(guarded, app_server):
    page, leaks = guarded
    for present in (False, True):
        for path in app_pages():
            page.goto(view_url(app_server["url"], path, present=present))
            settle(page)
            assert page_errors(page) == [], path
            _interact(page, path, present)
    assert leaks == []


# pages whose first figure bundle is downloaded (server-side export, snippet, data)
BUNDLES = {"dla": "dla_heads", "graph": "attribution_graph", "steering": "steering_kl"}


def _interact(page, path: str, present: bool) -> None:
    """A few clicks: a figure cell, a download (server-side export), a tour step."""
    if path == "attention":
        area = page.locator(".js-plotly-plot .nsewdrag").first
        box = area.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
        settle(page)
        page.frame_locator("iframe").first.locator("#cv *").first.wait_for(timeout=30_000)
    if path in BUNDLES and not present:
        with page.expect_download(timeout=120_000) as download:
            page.get_by_role("button", name="Figure bundle").first.click()
        name = BUNDLES[path]
        assert download.value.suggested_filename == f"{name}.zip"
        with zipfile.ZipFile(download.value.path()) as z:
            files = set(z.namelist())
            assert {f"{name}/{f}" for f in (f"{name}.png", f"{name}.svg", "snippet.py")} <= files
            compile(z.read(f"{name}/snippet.py"), "snippet.py", "exec")
    if path == "tour" and not present:
        page.get_by_role("button", name="Start", exact=True).first.click()
        page.get_by_text("Step 1/").first.wait_for(timeout=60_000)
        settle(page)
        page.keyboard.press("ArrowRight")
        page.get_by_text("Step 2/").first.wait_for(timeout=60_000)
        settle(page)
        page.get_by_role("button", name="End tour").click()
        settle(page)
