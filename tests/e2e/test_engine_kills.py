"""Killing the engine mid graph job and mid steering stream, in a real browser: the page shows
the banner (never a traceback), recovers by itself, and offers to rerun the lost job."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from urllib.parse import quote_plus

import httpx
import pytest

from components import steering_setup as ss
from tests.e2e.conftest import screenshot
from tests.e2e.pages import LOAD, settle

pytestmark = pytest.mark.browser
GRAPH_PROMPT = "When Mary and John went to the store, John gave a drink to Mary. Once upon a time"
STORY = "Once upon a time, there was a sad dog named Max."
STEERED_LONGER = """p => { const e = document.querySelector('.steered-out');
  return e && e.innerText.length > p.length + 3; }"""


def engine_pid(app_server) -> int:
    return httpx.get(f"{app_server['engine_url']}/health", timeout=10).json()["pid"]


def assert_no_traceback(page) -> None:
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and 'File "' not in text, text[:2000]
    assert page.locator('[data-testid="stException"]').count() == 0


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label)
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(300)


def test_engine_killed_mid_graph_job(page, app_server):
    page.goto(f"{app_server['url']}/graph?prompt={quote_plus(GRAPH_PROMPT)}")
    page.get_by_text("Saved graphs (this model)").first.wait_for(timeout=LOAD)
    caps = httpx.get(f"{app_server['engine_url']}/capabilities", timeout=60).json()
    if not caps["features"]["transcoders"]["available"]:
        pytest.skip("the demo model has no transcoders")
    settle(page)
    set_number(page, "Latent node budget", 1500)  # a few seconds: one backward per latent
    set_number(page, "Batch size", 1)
    settle(page)
    old = engine_pid(app_server)
    page.get_by_role("button", name="Generate").click()
    # the job is running: its progress box (its Cancel button), not the cost estimate's
    # "backward passes", which shows before the job is submitted
    page.get_by_role("button", name="Cancel").first.wait_for(timeout=LOAD)
    os.kill(old, signal.SIGSTOP)  # freeze it mid job, make sure it was not done, then kill
    page.wait_for_timeout(1500)
    assert "graph=" not in page.url, "the job finished before the engine was stopped"
    os.kill(old, signal.SIGKILL)
    try:
        page.get_by_text("The engine restarted").first.wait_for(timeout=LOAD)
    except Exception:
        screenshot(page, "graph_job_kill_failed", 1200)
        raise
    page.get_by_text("The graph job was lost when the engine stopped").first.wait_for(timeout=LOAD)
    rerun = page.get_by_role("button", name="Run it again")
    rerun.first.wait_for(timeout=30_000)
    settle(page)
    assert_no_traceback(page)
    screenshot(page, "graph_job_lost", 1200)
    assert engine_pid(app_server) != old
    rerun.first.click()  # the lost job runs again on the new engine, and its graph opens
    page.wait_for_url(lambda url: "graph=organism-transcoder-" in url, timeout=LOAD)
    page.get_by_text("Click a node to see it here").first.wait_for(timeout=LOAD)
    settle(page)
    assert_no_traceback(page)
    assert page.get_by_text("lost when the engine stopped").count() == 0


@contextlib.contextmanager
def throttled(pid: int, run_s: float = 0.01, stop_s: float = 0.04):
    """The engine process runs a fifth of the time (SIGSTOP / SIGCONT in turn), so that a
    stream of a 128-token model lasts long enough to be caught mid-way on a fast machine; on
    leaving, the process is left stopped."""
    done = threading.Event()

    def cycle() -> None:
        while True:
            os.kill(pid, signal.SIGSTOP)
            if done.wait(stop_s):
                return
            os.kill(pid, signal.SIGCONT)
            time.sleep(run_s)

    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _catch_mid_stream(page, app_server, tries: int = 6) -> None:
    """Start a stream (a new seed) with the engine slowed down, stop it (SIGSTOP) once the
    steered text has begun to stream; if it was done already, let it go on and try again with
    another seed. Kill it while stopped."""
    for attempt in range(tries):
        pid = engine_pid(app_server)
        with throttled(pid):
            set_number(page, "Seed (both continuations)", attempt + 1)
            page.wait_for_function(
                "() => !document.body.innerText.includes('tokens/s per continuation')",
                timeout=LOAD,
            )
            page.wait_for_function(STEERED_LONGER, arg=STORY, timeout=LOAD)
        page.wait_for_timeout(2000)  # stopped: the page waits for the next tokens
        if page.get_by_text("tokens/s per continuation").count() == 0:
            os.kill(pid, signal.SIGKILL)  # mid stream
            return
        os.kill(pid, signal.SIGCONT)  # it had finished: try again
        page.get_by_text("tokens/s per continuation").first.wait_for(timeout=LOAD)
    pytest.fail(f"never caught the stream mid-way in {tries} tries")


def test_engine_killed_mid_steering_stream(page, app_server):
    setup = {"vectors": [{"kind": "sae_latent", "sae": "blocks.1.hook_resid_post", "index": 0,
                          "coefficient": 8.0}]}  # fmt: skip
    query = f"prompt={quote_plus(STORY)}&steer={ss.to_url(setup)}&slen=120&stemp=0.8"
    page.goto(f"{app_server['url']}/steering?{query}")
    page.get_by_text("tokens/s per continuation").first.wait_for(timeout=LOAD)  # engine warm
    settle(page)
    _catch_mid_stream(page, app_server)
    t0 = time.monotonic()
    page.get_by_text("The engine restarted").first.wait_for(timeout=LOAD)
    page.get_by_text("tokens/s per continuation").first.wait_for(timeout=LOAD)  # streams again
    settle(page)
    assert_no_traceback(page)
    screenshot(page, "steering_after_kill", 1300)
    assert time.monotonic() - t0 < LOAD / 1000
    set_number(page, "Seed (both continuations)", 4242)  # a later action works
    page.wait_for_url(lambda url: "sseed=4242" in url, timeout=60_000)
    page.get_by_text("tokens/s per continuation").first.wait_for(timeout=LOAD)
    settle(page)
    assert_no_traceback(page)
