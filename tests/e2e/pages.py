"""Every page of the app, a view URL to show each, and waiting until Streamlit is done."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from components import tour
from engine.launcher import REPO_ROOT

LOAD = 180_000  # ms: the first page load starts the engine
FACT = "The capital of France is"


def _tour_queries() -> dict[str, str]:
    """Each page's first view in the built-in tour (its query string)."""
    out: dict[str, str] = {}
    for step in tour.load(tour.DEFAULT_TOUR).steps:
        path, _, query = step.url.partition("?")
        out.setdefault(path.strip("/"), query)
    return out


def app_pages() -> list[str]:
    """The url path of every page registered in app.py (``""``: the default page)."""
    src = (REPO_ROOT / "app.py").read_text()
    out = []
    for line in src.splitlines():
        m = re.search(r'st\.Page\("views/(\w+)\.py"', line)
        if m:
            out.append("" if "default=True" in line else m.group(1))
    return out


def view_url(base: str, path: str, present: bool = False) -> str:
    """The page's first view in the built-in tour (other pages: the fact prompt)."""
    query = _tour_queries().get(path, "" if path == "tour" else urlencode({"prompt": FACT}))
    if present:
        query += ("&" if query else "") + "present=1"
    return f"{base}/{path}" + (f"?{query}" if query else "")


def settle(page, timeout: int = LOAD) -> None:
    """Wait until the page has a title and Streamlit has finished running the script, and stays
    finished for a second with no placeholders left (a page may rerun itself once or twice)."""
    page.locator("h1").first.wait_for(timeout=timeout)
    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    skeleton = page.locator('[data-testid="stSkeleton"]')
    for _ in range(30):
        idle.wait_for(timeout=timeout)
        page.wait_for_timeout(1000)  # figures draw after the script run ends
        if idle.count() == 1 and skeleton.count() == 0:
            return
    raise AssertionError("the page never settled")


def page_errors(page) -> list[str]:
    """Tracebacks and error boxes the page shows."""
    boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [boxes.nth(i).inner_text()[:300] for i in range(boxes.count())]
