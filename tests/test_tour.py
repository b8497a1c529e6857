"""Tours (file format, step URLs, shipped tours) and presenter mode's stylesheet."""

from __future__ import annotations

import json
import re

import pytest

from components import presenter, state, tour, warm
from engine.launcher import REPO_ROOT

APP_PAGES = set(re.findall(r'st\.Page\("views/(\w+)\.py"', (REPO_ROOT / "app.py").read_text()))


def test_split_url_takes_paths_queries_and_full_urls():
    assert tour.split_url("attention?prompt=a+b&layer=1") == (
        "attention", {"prompt": ["a b"], "layer": ["1"]}
    )  # fmt: skip
    assert tour.split_url("?prompt=x") == ("", {"prompt": ["x"]})
    assert tour.split_url("http://localhost:8501/dla?target=+Mary&targets=a&targets=b") == (
        "dla", {"target": [" Mary"], "targets": ["a", "b"]}
    )  # fmt: skip
    assert tour.split_url("/logit_lens") == ("logit_lens", {})


@pytest.mark.parametrize("tour_id", tour.available())
def test_shipped_tours_name_real_pages_and_known_view_keys(tour_id):
    t = tour.load(tour_id)
    assert t.steps
    for step in t.steps:
        path, query = tour.split_url(step.url)
        assert path == "" or path in APP_PAGES, f"{step.title}: no page {path!r} in app.py"
        page = warm.page_file(path)
        assert page is None or (REPO_ROOT / page).is_file()
        unknown = set(query) - set(state.FIELDS)
        assert not unknown, f"{step.title}: keys {unknown} are not view state (state.FIELDS)"
        assert "prompt" in query, f"{step.title}: a step sets its prompt"
        assert not set(query) & set(state.SESSION_KEYS)


def test_the_organism_tour_is_the_default_and_starts_on_the_default_page():
    t = tour.load(tour.DEFAULT_TOUR)
    assert tour.split_url(t.steps[0].url)[0] == ""
    assert {"attention", "logit_lens", "dla"} <= set(tour.pages_of(t))


def test_bad_tours_fail_with_a_clear_message(tmp_path):
    (tmp_path / "empty.json").write_text(json.dumps({"title": "x", "steps": []}))
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "ok.json").write_text(
        json.dumps({"title": "ok", "steps": [{"title": "one", "url": "?prompt=a"}]})
    )
    assert tour.available(tmp_path) == ["broken", "empty", "ok"]
    assert tour.load("ok", tmp_path).steps[0].note == ""
    for bad in ("empty", "broken"):
        with pytest.raises(tour.TourError, match=f"{bad}.json is not a valid tour"):
            tour.load(bad, tmp_path)
    with pytest.raises(tour.TourError, match=r"No tour named 'nope' \(known: broken, empty, ok\)"):
        tour.load("nope", tmp_path)
    with pytest.raises(tour.TourError):
        tour.load("../ok", tmp_path)


def test_clamp_step():
    t = tour.load(tour.DEFAULT_TOUR)
    n = len(t.steps)
    assert [tour.clamp_step(t, s) for s in (None, -3, 1, n + 5)] == [0, 0, 1, n - 1]


def test_presenter_css_hides_chrome_and_enlarges_text():
    css = presenter.css(24)
    for selector in ('[data-testid="stSidebar"]', '[data-testid="stHeader"]', "footer"):
        assert selector in css
    assert "display: none !important" in css and "html { font-size: 24px; }" in css
    assert css.startswith("<style>") and css.rstrip().endswith("</style>")


def test_presenter_figures_are_larger_and_exports_are_paper_sized():
    import plotly.graph_objects as go

    from components.theme import PAPER_WIDTH, paper, presenter_copy

    fig = go.Figure(go.Heatmap(z=[[1, 2]], text=[["a", "b"]], textfont=dict(size=10)))
    fig.update_layout(height=300, template="interpscope")
    fig.update_xaxes(tickfont=dict(size=11))
    big = presenter_copy(fig)
    assert big.data[0].textfont.size == 15 and big.layout.xaxis.tickfont.size == 16
    assert big.layout.height == 390 and big.layout.template.layout.font.size == 22
    assert fig.data[0].textfont.size == 10  # the original is untouched
    small = paper(big)
    assert small.layout.width == PAPER_WIDTH and small.layout.template.layout.font.size == 12
