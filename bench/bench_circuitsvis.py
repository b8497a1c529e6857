"""The circuitsvis bundle (1.3 MB) inlined in every render vs served once as a static file.

    python -m bench.bench_circuitsvis [--model DIR]

Runs the real app twice (``INTERPSCOPE_CIRCUITSVIS=inline``, then the default: served from
``/app/static/``) in headless Chromium on the Attention page with a 32-token prompt, and
measures per rerun the bytes the browser receives over Streamlit's websocket and the time
until the page is done: (a) a rerun that keeps the layer (switching the head score), and
(b) a rerun that changes the layer, until circuitsvis has drawn the new layer's heads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote_plus

import httpx
from playwright.sync_api import Page, sync_playwright

from bench.common import PROMPT_32, REPO, model_dir
from engine.launcher import free_port

CHROMIUM = os.environ.get("INTERPSCOPE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def start_app(model: str, mode: str, tmp: str) -> tuple[subprocess.Popen, str, str]:
    engine_url, port = f"http://127.0.0.1:{free_port()}", free_port()
    env = os.environ | {"INTERPSCOPE_ENGINE_URL": engine_url, "INTERPSCOPE_MODEL": model,
                        "INTERPSCOPE_CACHE_DIR": f"{tmp}/{mode}", "INTERPSCOPE_CIRCUITSVIS": mode}  # fmt: skip
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    return proc, url, engine_url


class Wire:
    """Bytes received over the page's websockets."""

    def __init__(self, page: Page):
        self.bytes = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, payload: str | bytes) -> None:
        self.bytes += len(payload)


def click_layer(page: Page, layer: int, n_layers: int) -> None:
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.click(
        box["x"] + box["width"] * 0.1, box["y"] + box["height"] * (layer + 0.5) / n_layers
    )


def measure(page: Page, wire: Wire, action, done) -> tuple[float, int]:
    before, t0 = wire.bytes, time.perf_counter()
    action()
    done()
    return (time.perf_counter() - t0) * 1e3, wire.bytes - before


PROMPTS = [PROMPT_32, PROMPT_32.replace("Mary", "Anna"), PROMPT_32.replace("Paris", "Rome")]


def run_mode(browser, url: str, engine_url: str) -> dict:
    """Per prompt: open the page on layer 0, switch the score twice (same layer), then visit
    each other layer once (new circuitsvis content each time: Streamlit's browser-side
    message cache would otherwise serve a layer seen before without resending it)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    wire = Wire(page)
    page.goto(url)
    page.get_by_text("next-token predictions").first.wait_for(timeout=180_000)
    n_layers = httpx.get(f"{engine_url}/capabilities").json()["model"]["n_layers"]
    frame = page.frame_locator("iframe").first
    same, change = [], []
    for prompt in PROMPTS:
        page.goto(f"{url}/attention?prompt={quote_plus(prompt)}&layer=0&head=0")
        frame.get_by_text("L0H0 Zoomed").wait_for(timeout=60_000)
        for score, title in [
            ("BOS", "BOS (sink) score"),
            ("Previous token", "Previous token score"),
        ]:
            same.append(measure(page, wire, lambda s=score: page.get_by_role("radio", name=s, exact=True).click(),
                                lambda t=title: page.get_by_text(t).first.wait_for()))  # fmt: skip
        for layer in range(1, n_layers):
            change.append(measure(page, wire, lambda la=layer: click_layer(page, la, n_layers),
                                  lambda la=layer: frame.get_by_text(f"L{la}H0 Zoomed").wait_for()))  # fmt: skip
            page.wait_for_timeout(300)
    page.close()
    med = statistics.median
    return {
        "n": len(change), "same_ms": med(t for t, _ in same), "same_kb": med(b for _, b in same) / 1e3,
        "change_ms": med(t for t, _ in change), "change_kb": med(b for _, b in change) / 1e3,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a local Hugging Face model directory (default: organism)")
    args = ap.parse_args()
    model = model_dir(args.model)
    results = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for mode in ("inline", "served"):
            proc, url, engine_url = start_app(model, mode, tmp)
            try:
                results[mode] = run_mode(browser, url, engine_url)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
                stop_engine(engine_url)
        browser.close()
    print(f"model: {model}; Attention page, medians over {results['served']['n']} layer changes")
    print(f"{'bundle':8} {'same layer':>22} {'new layer (circuitsvis drawn)':>34}")
    for mode, r in results.items():
        print(f"{mode:8} {r['same_ms']:9.0f} ms {r['same_kb']:8.1f} kB"
              f" {r['change_ms']:15.0f} ms {r['change_kb']:8.1f} kB")  # fmt: skip


def stop_engine(engine_url: str) -> None:
    try:
        pid = httpx.get(f"{engine_url}/health", timeout=2).json()["pid"]
        os.kill(pid, 9)
    except (httpx.HTTPError, ProcessLookupError, KeyError):
        pass


if __name__ == "__main__":
    main()
