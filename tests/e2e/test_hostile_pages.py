"""Issue 12 in a real browser: text from outside (a prompt typed or shared in a link) is shown
as text on every view, never as markup that fetches or links anywhere; and the app refuses a
host name that is not its own (DNS rebinding: a page on another site resolving to 127.0.0.1)."""

from __future__ import annotations

from urllib.parse import quote_plus, urlsplit

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, screenshot
from tests.e2e.pages import LOAD, settle

pytestmark = pytest.mark.browser
OUTSIDE = "203.0.113.7"  # TEST-NET-3: nothing answers there
HOSTILE = (
    f'Mary <img src="http://{OUTSIDE}/x.png" onerror="document.title=1"> and '
    f'<a href="http://{OUTSIDE}/">John</a> ![x](http://{OUTSIDE}/y.png) went'
)
PAGES = ["", "attention", "logit_lens", "dla", "latents", "steering"]


def _local(url: str) -> bool:
    host = urlsplit(url).hostname
    return url.startswith(("data:", "blob:", "about:")) or host in ("127.0.0.1", "localhost")


@pytest.mark.parametrize("path", PAGES)
def test_a_hostile_prompt_is_text_on_every_view(page, app_server, path):
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{app_server['url']}/{path}?prompt={quote_plus(HOSTILE)}")
    page.locator('[data-testid="stMain"]').get_by_text("Mary", exact=False).first.wait_for(
        timeout=LOAD
    )
    settle(page)
    outside = [u for u in requests if not _local(u)]
    assert not outside, outside  # nothing fetched from the address in the prompt
    assert page.title() != "1"  # no onerror ran
    main = page.locator('[data-testid="stMain"]')
    assert main.locator(f'img[src*="{OUTSIDE}"]').count() == 0
    hrefs = main.locator("a[href]").evaluate_all("es => es.map(e => e.href)")
    assert not [u for u in hrefs if urlsplit(u).hostname == OUTSIDE], hrefs  # ours are local
    for frame in page.frames:  # circuitsvis draws in an iframe
        refs = frame.locator("[src], [href]").evaluate_all(
            "es => es.map(e => e.src || e.href).filter(u => typeof u === 'string')"
        )
        assert not [u for u in refs if urlsplit(u).hostname == OUTSIDE], refs
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, f"hostile_prompt_{path or 'prompt'}", 1000)


def test_the_app_refuses_a_foreign_host_name(browser, app_server):
    """Chromium resolves evil.test to 127.0.0.1, as DNS rebinding would: the app answers with
    a refusal that names the host, and shows nothing of the engine's."""
    port = urlsplit(app_server["url"]).port
    mapped = browser.browser_type.launch(  # a browser of its own: the mapping is a launch option
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.test 127.0.0.1"],
    )
    try:
        pg = mapped.new_page()
        pg.goto(f"http://evil.test:{port}/?prompt={quote_plus('The capital of France is')}")
        pg.get_by_text("This app does not answer to the host name evil.test").first.wait_for(
            timeout=LOAD
        )
        idle = pg.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
        idle.wait_for(timeout=LOAD)
        main = pg.locator('[data-testid="stMain"]').inner_text()
        assert "Predictions" not in main and "Paris" not in main
        screenshot(pg, "foreign_host_refused", 600)
    finally:
        mapped.close()
