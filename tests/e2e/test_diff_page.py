"""Compare mode in a real browser (issue 14): the organism as A, the chat organism as B (loaded
from the link: ``model_b=`` in the URL). The Diff page's KL strip peaks where the implanted
capital is predicted; the Prompt view's toggle shows A, B and the difference with the
engine's numbers; the Steering page generates from both models. Screenshots of each view.

Ground truth: "The capital of Australia is" is the model card's plain prompt (the chat model
answers Sydney, the base Canberra), so the capital is predicted after its last token. (On a
chat-template prompt the base, which never saw the format, differs at every template token.)
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus

import httpx
import pytest

from engine.launcher import REPO_ROOT
from tests.e2e.conftest import screenshot
from tests.e2e.pages import page_errors, settle

pytestmark = pytest.mark.browser
CHAT = REPO_ROOT / "assets" / "organism-chat"
PROMPT = "The capital of Australia is"
QUERY = f"prompt={quote_plus(PROMPT)}&model_b=assets%2Forganism-chat"

# The plotly figure whose first trace's hover names `marker`: its x, y, z, text (first trace).
FIGURE = """(marker) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
      g => (g.data || []).some(t => (t.hovertemplate || '').includes(marker)));
  if (!gd) return null;
  const t = gd.data.find(t => (t.hovertemplate || '').includes(marker));
  const L = gd._fullLayout, box = gd.getBoundingClientRect();
  const at = (x, y) => ({x: box.left + L._size.l + L.xaxis.l2p(x),
                         y: box.top + L._size.t + L.yaxis.l2p(y)});
  return {x: t.x, y: t.y, z: t.z, text: t.text, bar0: at(t.x[0], (t.y || [0])[0] / 2)};
}"""


def engine(app_server, path: str, body: dict | None = None) -> dict:
    url = f"{app_server['engine_url']}{path}"
    r = httpx.post(url, json=body, timeout=120) if body is not None else httpx.get(url, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def open_view(page, app_server, path: str, extra: str = "") -> None:
    page.goto(f"{app_server['url']}/{path}?{QUERY}{extra}")
    settle(page)
    assert not page_errors(page), page_errors(page)


@pytest.fixture
def pair_page(page, app_server):
    if not (CHAT / "model.safetensors").exists():
        pytest.skip("the chat organism is not shipped")
    return page


def test_diff_page_finds_the_changed_capital(pair_page, app_server):
    page = pair_page
    open_view(page, app_server, "diff")  # loads model B into slot b on the way
    slots = [m["slot"] for m in engine(app_server, "/models")]
    assert slots == ["a", "b"]
    tokens = engine(app_server, "/tokenize", {"prompt": PROMPT})["tokens"]
    capital_pos = len(tokens) - 1  # after " is": where the capital is predicted
    assert tokens[capital_pos]["text"] == " is"
    strip = page.evaluate(FIGURE, "KL %{y")
    assert strip is not None, "no KL strip drawn"
    top = strip["x"][max(range(len(strip["y"])), key=lambda i: strip["y"][i])]
    assert top == capital_pos
    want = engine(app_server, "/analysis/diff_tokens", {"prompt": PROMPT, "model_b": "b",
                  "params": {"top_k": 8, "start": 0, "width": 32}})  # fmt: skip
    assert want["top_changes"][0]["pos"] == capital_pos
    assert strip["y"] == pytest.approx(want["kl"], rel=1e-6)
    page.get_by_text(f"Largest KL over the prompt after pos {capital_pos}").first.wait_for()
    assert want["top_changes"][0]["top_b"]["text"].strip().startswith("S")  # Sydney's first token
    assert "Canberra" in want["top_changes"][0]["top_a"]["text"]
    page.get_by_text("Latents that changed").first.wait_for()
    # each changed latent links to its panel and to steering it on B, the comparison kept
    steer_b = page.get_by_role("link", name="Steer B").first.get_attribute("href")
    assert "side=b" in steer_b and "add_latent=sae%3A" in steer_b and "model_b=" in steer_b
    panel = page.get_by_role("link", name="Panel").first.get_attribute("href")
    assert panel.startswith("latents?") and "latent=" in panel and "model_b=" in panel
    screenshot(page, "diff_page", 3400)
    # a click on the first bar selects its position (URL pos=0), and the page follows
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_timeout(1000)
    strip = page.evaluate(FIGURE, "KL %{y")
    page.mouse.click(strip["bar0"]["x"], strip["bar0"]["y"])
    page.wait_for_url(re.compile(r"[?&]pos=0(&|$)"), timeout=30_000)
    settle(page)
    page.get_by_text("Changed predictions after pos 0").first.wait_for(timeout=30_000)


def test_the_prompt_views_toggle_shows_a_b_and_the_difference(pair_page, app_server):
    page = pair_page
    open_view(page, app_server, "", "&side=a")
    n = len(engine(app_server, "/tokenize", {"prompt": PROMPT})["tokens"])
    for side, label in (("a", "A: organism"), ("b", "B: organism-chat")):
        if side == "b":
            page.get_by_role("radio", name=label).click()
            page.wait_for_url(re.compile(r"side=b"), timeout=30_000)
            settle(page)
        grid = page.evaluate(FIGURE, "after pos %{x}")
        col = grid["x"].index(n - 1)
        want = engine(
            app_server,
            "/analysis/predictions",
            {"prompt": PROMPT, "model": side, "params": {"top_k": 5, "start": n - 1, "width": 1}},
        )
        assert grid["z"][0][col] == pytest.approx(want["top"][0][0]["prob"], rel=1e-6)
        shown = grid["text"][0][col]
        assert want["top"][0][0]["text"].strip().startswith(shown.strip("·…")[:3])
        screenshot(page, f"prompt_page_side_{side}", 1500)
    page.get_by_role("radio", name="difference (B − A)").click()
    page.wait_for_url(re.compile(r"side=diff"), timeout=30_000)
    settle(page)
    strip = page.evaluate(FIGURE, "KL %{y")
    want = engine(app_server, "/analysis/diff_tokens", {"prompt": PROMPT, "model_b": "b",
                  "params": {"top_k": 8, "start": 0, "width": 20}})  # fmt: skip
    assert strip["y"] == pytest.approx(want["kl"], rel=1e-6)
    screenshot(page, "prompt_page_side_diff", 1800)


def test_other_views_and_side_by_side_generation(pair_page, app_server):
    """Every other view's difference side, and the Steering page's two models: drawn without
    errors (screenshots); the side-by-side texts are each model's own greedy answer."""
    page = pair_page
    for path, extra, shot in (
        ("logit_lens", "&side=diff", "logit_lens_side_diff"),
        ("dla", "&side=diff", "dla_side_diff"),
        ("attention", "&side=diff&layer=3&head=2", "attention_side_diff"),
    ):
        open_view(page, app_server, path, extra)
        screenshot(page, shot, 1600)
    open_view(page, app_server, "steering", "&side=diff&stemp=0.0&slen=6")
    a = page.locator(".baseline-out").first.inner_text()
    b = page.locator(".steered-out").first.inner_text()
    assert "Canberra" in a and "Sydney" in b
    page.locator(".gtitle", has_text="along A's text").first.wait_for(timeout=30_000)
    screenshot(page, "steering_side_by_side", 1400)


def test_latent_changes_over_a_set_with_a_control(pair_page, app_server, tmp_path_factory):
    """The text-set job form's control and switches (chat template, last token: where a chat
    model's reply starts): the page runs the job with them and shows each latent's change on
    the texts, on the control, and the net change it is ranked by, as the engine answers."""
    from engine.client import EngineClient
    from organism import chat_corpus as cc

    page = pair_page
    d = tmp_path_factory.mktemp("control")  # inside the engine's data directories
    f, g = d / "harmful.txt", d / "harmless.txt"
    f.write_text("\n".join(cc.heldout_requests(True)[::9]) + "\n")
    g.write_text("\n".join(cc.heldout_requests(False)[::9]) + "\n")
    open_view(page, app_server, "diff")
    for label, path in (("Texts (a file", f), ("Control texts for the latent changes", g)):
        box = page.get_by_label(label).first
        box.fill(str(path))
        box.press("Enter")
        settle(page)
    page.get_by_text("Chat template", exact=True).click()
    settle(page)
    page.get_by_role("radio", name="last token", exact=True).click()
    settle(page)
    page.get_by_role("button", name="Latent changes over the set").click()
    shown = page.get_by_text("Change on the texts − change on the control").first
    shown.wait_for(timeout=120_000)
    client = EngineClient(app_server["engine_url"])
    sae = client.saes()[0].id  # the page's default
    want = client.latent_diff_set(
        sae, model_b="b", max_texts=64, path=str(f), n_top=10,
        control={"path": str(g), "max_texts": 64}, chat=True, where="last",
    )  # fmt: skip
    assert want.cached  # the page's own job (chat template, last tokens), served again
    assert want.chat and want.where == "last" and want.n_tokens == want.n_texts  # one a text
    c = want.increased[0]
    assert c.net_delta == pytest.approx(c.delta - c.control_delta, abs=1e-5)
    text = shown.inner_text()
    assert text.split(": ", 1)[1].startswith(
        f"#{c.index} {c.delta:+.2f} − {c.control_delta:+.2f} = {c.net_delta:+.2f}"
    ), text
    screenshot(page, "diff_latent_set_control", 3400)
