"""Every page in normal and presenter mode, in a real browser: no errors, presenter mode
hides the chrome and enlarges the text. Screenshots go to tests/artifacts/gallery; with
INTERPSCOPE_UPDATE_GALLERY=1 they replace the committed docs/gallery/ (README links it), so a
plain test run leaves the checkout clean.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from engine.launcher import REPO_ROOT
from tests.e2e.pages import app_pages, page_errors, settle, view_url

pytestmark = pytest.mark.browser
DOCS_GALLERY = REPO_ROOT / "docs" / "gallery"
GALLERY = (
    DOCS_GALLERY
    if os.environ.get("INTERPSCOPE_UPDATE_GALLERY") == "1"
    else REPO_ROOT / "tests" / "artifacts" / "gallery"
)
PAGES = app_pages()
TITLES = {"": "Prompt"}  # file name of the default page's shots


def shot_name(path: str, mode: str) -> str:
    return f"{TITLES.get(path, path).lower()}_{mode}.png"


@pytest.mark.parametrize("mode", ["normal", "presenter"])
@pytest.mark.parametrize("path", PAGES)
def test_page_in_both_modes(page, app_server, path, mode):
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.goto(view_url(app_server["url"], path, present=mode == "presenter"))
    settle(page)
    assert page_errors(page) == []
    sidebar = page.get_by_test_id("stSidebar")
    if mode == "presenter":  # (a page that reruns itself redraws: give the style a moment)
        expect(sidebar).to_be_hidden(timeout=15_000)
        expect(page.get_by_test_id("stHeader")).to_be_hidden()
        page.wait_for_function("getComputedStyle(document.documentElement).fontSize == '22px'")
        expect(page.get_by_text("Presenter mode").first).to_be_visible()  # the way back
        assert page.get_by_role("button", name="PNG", exact=True).count() == 0  # no downloads
    else:
        expect(sidebar).to_be_visible()
        assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "16px"
    GALLERY.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(GALLERY / shot_name(path, mode)))


def test_gallery_index_lists_every_shot():
    """docs/gallery/README.md: one row per page, both modes (written from app.py's pages)."""
    rows = [
        f"| {TITLES.get(p, p) or p} | ![]({shot_name(p, 'normal')}) | "
        f"![]({shot_name(p, 'presenter')}) |"
        for p in PAGES
    ]
    text = (
        "# Gallery\n\nEvery page of Interpscope on the demo organism, in normal and presenter "
        "mode, as the browser end-to-end tests see it (`INTERPSCOPE_UPDATE_GALLERY=1 bash test.sh` "
        "rewrites these screenshots and this index from `tests/e2e/test_gallery.py`).\n\n| page | normal | presenter |\n|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    GALLERY.mkdir(parents=True, exist_ok=True)
    (GALLERY / "README.md").write_text(text)
    missing = [p for p in PAGES for m in ("normal", "presenter")
               if not (GALLERY / shot_name(p, m)).exists()]  # fmt: skip
    assert not missing
    committed = [p for p in PAGES for m in ("normal", "presenter")
                 if not (DOCS_GALLERY / shot_name(p, m)).exists()]  # fmt: skip
    assert not committed, "run with INTERPSCOPE_UPDATE_GALLERY=1 to add these to docs/gallery"
    assert "docs/gallery" in (REPO_ROOT / "README.md").read_text()
