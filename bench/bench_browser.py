"""The Attention page in Chromium on a gpt2-small-shaped random model, 16 vs 1000 tokens.

Saves a random-weight GPT-2 small (12 x 12 heads, d_model 768, vocab 50257, context 1024) as a
Hugging Face directory with the organism's tokenizer, starts the app on it (``streamlit run``,
which starts its engine), and times in headless Chromium:

- cold page: the URL opened with the engine's results and runs dropped, until the pattern and
  circuitsvis are drawn and the script is idle; against the engine's own cold answers for that
  page (the same requests over HTTP); the difference is the page's fixed cost;
- click: a head clicked in the overview, until its pattern is drawn;
- window: the position window moved one step (1000 tokens only), until the new rows are drawn.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.bench_browser [--dir /tmp/gpt2-small-random]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from bench.common import ORGANISM, REPO
from components import windows
from engine.client import EngineClient
from engine.launcher import free_port
from organism.corpus import sample_texts

CHROMIUM = "/usr/bin/chromium"
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def save_model(out: Path) -> Path:
    if (out / "config.json").exists():
        return out
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024,
                     n_ctx=1024)  # fmt: skip
    GPT2LMHeadModel(cfg).save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(ORGANISM)).save_pretrained(str(out))
    return out


def prompt_of(n: int) -> str:
    tok = AutoTokenizer.from_pretrained(str(ORGANISM))
    text = " ".join(sample_texts(1000, seed=1))[:20_000]
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return text[: enc["offset_mapping"][n - 2][1]]  # n - 1 tokens, and BOS


def start_app(model_dir: Path, tmp: str) -> tuple[subprocess.Popen, str, str]:
    engine_port, app_port = free_port(), free_port()
    env = os.environ | {
        "INTERPSCOPE_ENGINE_URL": f"http://127.0.0.1:{engine_port}",
        "INTERPSCOPE_MODEL": str(model_dir),
        "INTERPSCOPE_CACHE_DIR": f"{tmp}/cache",
    }
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(app_port),
           "--server.headless", "true", "--browser.gatherUsageStats", "false"]  # fmt: skip
    log = open(f"{tmp}/streamlit.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the app's server up (a loaded machine: seconds)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{app_port}/_stcore/health", timeout=2).is_success:
                break
        time.sleep(0.3)
    return proc, f"http://127.0.0.1:{app_port}", env["INTERPSCOPE_ENGINE_URL"]


def stop_engine(engine_url: str) -> None:
    """The engine the app started for this bench (its pid from /health)."""
    with contextlib.suppress(httpx.HTTPError, ProcessLookupError, KeyError):
        os.kill(httpx.get(f"{engine_url}/health", timeout=2).json()["pid"], 9)


def drawn(page, last: int, head: str) -> None:
    """The pattern of `head` with query `last` on its axis, circuitsvis drawn, script idle."""
    plot = page.locator(".js-plotly-plot").nth(1)
    plot.locator("text.annotation-text", has_text=head).first.wait_for(timeout=600_000)
    plot.locator(".ytick text", has_text=re.compile(rf"^{last}:")).first.wait_for(timeout=600_000)
    page.frame_locator("iframe").first.locator("#cv *").first.wait_for(timeout=600_000)
    page.locator(IDLE).wait_for(timeout=600_000)


def engine_cold(client: EngineClient, prompt: str, n: int) -> float:
    """The page's requests, cold, over HTTP (what the engine itself takes)."""
    client.clear_cache()
    start = max(0, n - windows.ATTENTION)
    t0 = time.perf_counter()
    client.analyze("head_scores", prompt)
    client.analyze("attention_pattern", prompt, layer=0, head=0, start=start,
                   width=windows.ATTENTION, overview=windows.OVERVIEW)  # fmt: skip
    client.analyze("attention_layer", prompt, layer=0,
                   start=max(start, n - windows.CIRCUITSVIS), width=windows.CIRCUITSVIS)  # fmt: skip
    return (time.perf_counter() - t0) * 1e3


def measure(page, url: str, client: EngineClient, n: int, reps: int) -> dict:
    prompt = prompt_of(n)
    view = f"{url}/attention?prompt={quote_plus(prompt)}"
    out: dict[str, list[float]] = {"engine_cold": [], "page_cold": [], "click": [], "window": []}
    for i in range(reps):
        out["engine_cold"].append(engine_cold(client, prompt, n))
        client.clear_cache()
        page.goto("about:blank")
        t0 = time.perf_counter()
        page.goto(view + "&layer=0&head=0")
        drawn(page, n - 1, "L0H0")
        out["page_cold"].append((time.perf_counter() - t0) * 1e3)
        area = page.locator(".js-plotly-plot .nsewdrag").first
        box = area.bounding_box()
        layer, head = 5 + i % 3, 7
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + box["width"] * (head + 0.5) / 12,
                         box["y"] + box["height"] * (layer + 0.5) / 12)  # fmt: skip
        drawn(page, n - 1, f"L{layer}H{head}")
        out["click"].append((time.perf_counter() - t0) * 1e3)
        if n > windows.ATTENTION:
            page.get_by_role("slider").first.focus()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowLeft")
            drawn(page, n - 2, f"L{layer}H{head}")
            out["window"].append((time.perf_counter() - t0) * 1e3)
            page.goto("about:blank")
    return {k: statistics.median(v) for k, v in out.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=f"{tempfile.gettempdir()}/interpscope-gpt2-small-random")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    model_dir = save_model(Path(args.dir))
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, engine_url = start_app(model_dir, tmp)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/attention?prompt=warm")  # starts the engine, loads the model
                page.locator(".js-plotly-plot").nth(1).wait_for(timeout=900_000)
                client = EngineClient(engine_url, timeout=900)
                results = {n: measure(page, url, client, n, args.reps) for n in (16, 64, 1000)}
                browser.close()
        finally:
            proc.terminate()
            stop_engine(engine_url)
    for n, r in results.items():
        print(f"{n:5d} tokens: " + "  ".join(f"{k} {v:8.0f} ms" for k, v in r.items()))
    fixed = results[16]["page_cold"] - results[16]["engine_cold"]
    big = results[1000]
    print(f"fixed page cost (16 tokens: page - engine): {fixed:.0f} ms")
    print(f"cold page at 1000: {big['page_cold']:.0f} ms vs 1.5 x engine + fixed = "
          f"{1.5 * big['engine_cold'] + fixed:.0f} ms")  # fmt: skip
    print(f"click 1000 / 16: {big['click'] / results[16]['click']:.2f}x")
    # 64 tokens already fill the pattern's 40-position window (and circuitsvis's 20): from
    # there on the figures are the same size, and only the prompt's length differs
    print(f"click 1000 / 64: {big['click'] / results[64]['click']:.2f}x")


if __name__ == "__main__":
    main()
