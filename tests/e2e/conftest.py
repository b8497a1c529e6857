"""Browser end-to-end fixtures: the real app (``streamlit run``), its engine, headless Chromium.

Chromium is Debian's (/usr/bin/chromium) driven by Playwright from PyPI. Without it these
tests skip, unless INTERPSCOPE_REQUIRE_BROWSER=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.launcher import REPO_ROOT, free_port

CHROMIUM = os.environ.get("INTERPSCOPE_CHROMIUM", "/usr/bin/chromium")
SHOTS = REPO_ROOT / "tests" / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip


def _need_browser() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("INTERPSCOPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"Chromium not found at {CHROMIUM} (required here)")
        pytest.skip(f"Chromium not found at {CHROMIUM}")


@pytest.fixture(scope="session")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def demo_model_dir(tiny_model_dir):
    """The embedded organism when it is shipped, else the tiny random test model."""
    organism = REPO_ROOT / "assets" / "organism"
    return organism if (organism / "config.json").exists() else tiny_model_dir


@pytest.fixture(scope="session")
def app_server(demo_model_dir, tmp_path_factory):
    """``streamlit run app.py`` that starts (and restarts) its own engine on a free port."""
    tmp = tmp_path_factory.mktemp("app")
    engine_port, app_port = free_port(), free_port()
    env = os.environ | {
        "INTERPSCOPE_ENGINE_URL": f"http://127.0.0.1:{engine_port}",
        "INTERPSCOPE_MODEL": str(demo_model_dir),
        "INTERPSCOPE_CACHE_DIR": str(tmp / "cache"),
        # the tests' files (datasets made in tmp_path) are readable by the engine (engine/paths.py)
        "INTERPSCOPE_DATA_DIRS": json.dumps([str(tmp_path_factory.getbasetemp())]),
    }
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(app_port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    log = open(tmp / "streamlit.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{app_port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    yield {"url": url, "engine_url": env["INTERPSCOPE_ENGINE_URL"], "log": tmp / "streamlit.log"}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _stop_engine(env["INTERPSCOPE_ENGINE_URL"])


def _stop_engine(engine_url: str) -> None:
    try:
        pid = httpx.get(f"{engine_url}/health", timeout=2).json()["pid"]
        os.kill(pid, 9)
    except (httpx.HTTPError, ProcessLookupError, KeyError):
        pass


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def screenshot(page, name: str, height: int | None = None) -> Path:
    """A full-page screenshot; with `height`, first resize the window to it and let the page
    redraw (Streamlit scrolls inside its own container, so the window sets what is shown)."""
    if height is not None:
        page.set_viewport_size({"width": 1400, "height": height})
        page.wait_for_timeout(1500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
