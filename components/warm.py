"""Warm a tour: run every step's page once, headless, so the engine caches what it asks for.

``python -m components.warm <tour id>`` runs app.py with each step's URL under Streamlit's
AppTest (no browser) against the engine at ``INTERPSCOPE_ENGINE_URL``; the page makes the
very requests it will make when presented, so afterwards each step renders from the
engine's result cache. One JSON line per step on stdout: ``{"step", "n", "title", "ok",
"seconds", "error"}``. ``warm(...)`` runs it as a subprocess and reports each line; its
stderr goes to ``warm-<tour>.log`` in the user log directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from platformdirs import user_log_dir

from components import tour

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "app.py"
STEP_TIMEOUT_S = 180
LOG_DIR = Path(user_log_dir("interpscope"))  # warm-<tour>.log: the last warm-up's stderr


def page_file(path: str) -> str | None:
    """The page script of a step's path (url paths are the views' file names), or None
    for the default page."""
    return f"views/{path}.py" if path else None


def run_step(url: str, timeout: float = STEP_TIMEOUT_S) -> str | None:
    """Run the page of `url` once; the first error it showed, or None."""
    from streamlit.testing.v1 import AppTest

    path, query = tour.split_url(url)
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    for key, values in query.items():
        at.query_params[key] = values if len(values) > 1 else values[0]
    if page_file(path):
        if not (REPO_ROOT / page_file(path)).is_file():
            return f"no page {path!r}"
        at.switch_page(page_file(path))
    at.run()
    problems = [e.value for e in at.error] + [e.message for e in at.exception]
    return str(problems[0]) if problems else None


def main(tour_id: str) -> int:
    t = tour.load(tour_id)
    failed = 0
    for i, step in enumerate(t.steps):
        t0 = time.perf_counter()
        try:
            error = run_step(step.url)
        except Exception as e:  # noqa: BLE001 - reported, the next step still warms
            error = f"{type(e).__name__}: {e}"
        failed += error is not None
        line = {"step": i, "n": len(t.steps), "title": step.title, "ok": error is None,
                "seconds": round(time.perf_counter() - t0, 2), "error": error}  # fmt: skip
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    return 1 if failed else 0


def warm(tour_id: str, engine_url: str, token: str | None = None) -> Iterator[dict]:
    """Warm `tour_id` in a subprocess; yields each step's report as it finishes."""
    env = os.environ | {"INTERPSCOPE_ENGINE_URL": engine_url, "INTERPSCOPE_NO_SPAWN": "1"}
    if token:
        env["INTERPSCOPE_TOKEN"] = token
    cmd = [sys.executable, "-m", "components.warm", tour_id]
    log = LOG_DIR / f"warm-{tour_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        log.open("wb") as err,
        subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                yield json.loads(line)


if __name__ == "__main__":
    import logging

    logging.disable(logging.WARNING)  # AppTest's "missing ScriptRunContext" chatter
    sys.exit(main(sys.argv[1]))
