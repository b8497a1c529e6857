"""Figure builders of the Attention, Logit lens and DLA views: the figures carry the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from components import attention_vis, token_refs
from components.attention_figures import (
    head_scores_figure,
    overview_figure,
    parse_head,
    patterns_figure,
    scores_table,
)
from components.dla_figures import bar_terms, heads_figure, signed, terms_figure
from components.export import caption_text, with_caption
from components.lens_figures import final_top, lens_figure, row_of_layer, short, traces_figure
from components.windows import centred_on, window_of
from engine.schemas.analyses import DLAResult, HeadScoresResult, LensTargetsResult, LogitLensResult

TOKENS = ["<bos>", "A", " b", "</script>"]


def token(i, t):
    return {"pos": i, "id": i, "text": t, "start": None if i == 0 else i, "end": None}


def fake_scores(**changes) -> HeadScoresResult:
    def score(name, values, reason=None):
        return {"name": name, "label": name.title(), "description": f"about {name}",
                "values": values, "n_queries": 3, "reason": reason}  # fmt: skip

    return HeadScoresResult.model_validate(
        {
            "tokens": [token(i, t) for i, t in enumerate(TOKENS)],
            "n_layers": 2,
            "n_heads": 3,
            "scores": [
                score("prev_token", changes.pop("values", [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])),
                score("induction", None, "no token in the prompt repeats an earlier one"),
            ],
            **changes,
        }
    )


def shapes(fig):
    return [(s.x0, s.x1, s.y0, s.y1) for s in fig.layout.shapes]


def test_head_scores_figure_and_table():
    res = fake_scores()
    fig = head_scores_figure(res, "prev_token", selected=(1, 2), compare=(0, 0))
    heat, grid = fig.data
    assert [list(r) for r in heat.z] == res.scores[0].values
    assert heat.text[1][2] == "0.60" and heat.zmax == 1
    assert len(grid.x) == 6 and "L1H2: 0.600" in grid.text  # one click target per head
    assert grid.marker.maxdisplayed == 1  # drawn once: hover and clicks work on the data
    assert (1.5, 2.5, 0.5, 1.5) in shapes(fig) and (-0.5, 0.5, -0.5, 0.5) in shapes(fig)
    empty = head_scores_figure(res, "induction")
    assert not empty.data and "repeats" in empty.layout.annotations[0].text
    table = scores_table(res, [(1, 2), (0, 1)])
    assert list(table.columns) == ["score", "L1H2", "L0H1"]
    assert table["L1H2"].tolist()[0] == 0.6 and table["L0H1"].isna().tolist() == [False, True]
    assert parse_head("3.11") == (3, 11)


def test_patterns_figure_masks_the_future_and_labels_tokens():
    pattern = [[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.2, 0.3, 0.5, 0], [0.1, 0.2, 0.3, 0.4]]
    fig = patterns_figure(
        TOKENS, [("L0H1", np.array(pattern), None), ("L1H0", np.array(pattern), None)],
        selected_pos=2,
    )  # fmt: skip
    heats = [d for d in fig.data if d.type == "heatmap"]
    assert len(heats) == 2
    assert list(heats[0].z[1][:2]) == [0.5, 0.5] and np.isnan(heats[0].z[1][2:]).all()
    assert list(heats[0].z[3]) == [0.1, 0.2, 0.3, 0.4]
    # escaped for plotly, which shows "&lt;bos&gt;" as <bos> (components/safe.py plot_text)
    assert fig.layout.yaxis.ticktext == ("0:&lt;bos&gt;", "1:A", "2:·b", "3:&lt;/script&gt;")
    assert fig.layout.xaxis2.ticktext == ("&lt;bos&gt;", "A", "·b", "&lt;/script&gt;")
    assert (-0.5, 3.5, 1.5, 2.5) in shapes(fig)
    assert [a.text for a in fig.layout.annotations] == ["L0H1", "L1H0"]


def fake_lens(start: int = 0) -> LogitLensResult:
    def pred(t, p):
        return {"id": len(t), "text": t, "prob": p, "logit": 1.0}

    top = [
        [[pred(f" r{r}p{p}", 0.1 * (r + p)), pred("x", 0.01)] for p in range(4)] for r in range(3)
    ]
    return LogitLensResult.model_validate({
        "stage": "resid_pre", "rows": ["L0 pre", "L1 pre", "output"], "row_layers": [0, 1, 1],
        "tokens": [token(start + i, t) for i, t in enumerate(TOKENS)], "top": top,
        "start": start, "stop": start + len(TOKENS), "n_tokens": start + len(TOKENS) + 10,
    })  # fmt: skip


def test_lens_figure_cells_are_the_top_tokens():
    res = fake_lens()
    fig = lens_figure(res, selected_pos=1, selected_layer=1)
    heat, grid = fig.data
    assert heat.z[2][3] == pytest.approx(0.5) and heat.text[2][3] == "·r2p3"
    assert fig.layout.yaxis.ticktext == ("L0 pre", "L1 pre", "output")
    assert len(grid.x) == 12 and "2. x  p=0.010" in grid.text[0]
    assert row_of_layer(res, 1) == 1 and row_of_layer(res, 7) is None
    assert (0.5, 1.5, 0.5, 1.5) in shapes(fig)
    assert short("abcdefghijk") == "abcdefg…"


def test_traces_figure_has_probability_and_rank():
    res = LensTargetsResult.model_validate(
        {"stage": "resid_post", "pos": 3, "rows": ["L0 post", "L1 post"], "row_layers": [0, 1],
         "traces": [{"token": {"id": 5, "text": " Paris"}, "prob": [0.1, 0.9],
                     "logit": [1.0, 3.0], "rank": [40, 1]}]}
    )  # fmt: skip
    fig = traces_figure(res)
    prob, rank = fig.data
    assert list(prob.y) == [0.1, 0.9] and list(rank.y) == [40, 1]
    assert prob.name == "·Paris (id 5)" and fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis2.range[0] > fig.layout.yaxis2.range[1]  # rank 1 on top


def fake_dla(baseline=None, heads=None) -> DLAResult:
    heads = heads or [[0.5, -0.25], [0.0, 1.0]]
    res = {
        "pos": 2, "token": dict(token(2, " b"), id=7), "target": {"id": 3, "text": " Paris"},
        "baseline": baseline, "metric": "logit", "heads": heads, "mlps": [0.2, -0.1],
        "attn_bias": [0.01, 0.02], "embed": 0.3, "pos_embed": -0.05, "unembed_bias": 0.0,
        "model_value": 0.0, "ln_scale": 2.0,
    }  # fmt: skip
    res["total"] = res["model_value"] = 0.5 - 0.25 + 1.0 + 0.2 - 0.1 + 0.03 + 0.3 - 0.05
    return DLAResult.model_validate(res)


def test_dla_figures_carry_every_term():
    res = fake_dla()
    fig = heads_figure(res, selected=(1, 0))
    heat = fig.data[0]
    assert [list(r) for r in heat.z] == res.heads and heat.zmid == 0
    assert heat.text[0][1] == "-0.25" and "logit(·Paris)" in fig.layout.title.text
    bars = terms_figure(res, selected_layer=1).data[0]
    assert list(bars.x)[-1] == "total" and bars.y[-1] == pytest.approx(res.total)
    assert sum(bars.y[:-1]) == pytest.approx(res.total)
    assert dict(bar_terms(res))["all heads"] == pytest.approx(1.25)
    assert list(bars.marker.line.width).index(3) == list(bars.x).index("MLP 1")
    diff = heads_figure(fake_dla({"id": 9, "text": " Rome"}))
    assert "logit(·Paris) − logit(·Rome)" in diff.layout.title.text
    assert signed(0.00123, 0.002) == "+0.0012" and signed(-1.5, 3) == "-1.50"


def test_view_figures_export_with_a_caption():
    cap = caption_text("tiny", "a prompt", {"stage": "resid_pre", "pos": 3})
    for fig in (lens_figure(fake_lens()), heads_figure(fake_dla())):
        out = with_caption(fig, cap)
        assert any("stage=resid_pre" in a.text for a in out.layout.annotations)


def test_token_refs_round_trip():
    assert token_refs.to_wire("#12") == 12 and token_refs.to_wire(" Paris") == " Paris"
    assert token_refs.from_typed("·Paris") == " Paris" and token_refs.from_typed(" #4 ") == "#4"
    assert token_refs.label("#12", {12: " Paris"}) == "·Paris  #12"
    assert token_refs.label("#13", {}) == "#13" and token_refs.label("a b", {}) == "a·b"


def test_circuitsvis_page_refers_to_the_served_bundle(tmp_path):
    patterns = [[[1.0, 0.0], [0.5, 0.5]]]
    page = attention_vis.attention_heads_html(
        TOKENS[2:], patterns, ["L0H0"], bundle_url="/app/static/vendor/cv.js"
    )
    assert '<script src="/app/static/vendor/cv.js"></script>' in page
    assert "\\u003c/script>" in page and page.count("</script>") == 2  # token text is escaped
    assert "unpkg" not in page and "http" not in page and len(page) < 2000
    inline = attention_vis.attention_heads_html(TOKENS[2:], patterns, ["L0H0"], bundle_url=None)
    assert len(inline) > 1_000_000 and "<script src" not in inline
    url = attention_vis.install_bundle(tmp_path)
    copied = tmp_path / attention_vis.bundle_name()
    assert url == "/app/static/" + attention_vis.bundle_name()
    assert copied.read_bytes() == attention_vis.BUNDLE.read_bytes()


def test_window_of_ends_at_the_selected_position_unless_started():
    assert window_of(None, 999, 1000, 40) == (960, 1000)
    assert window_of(None, 5, 1000, 40) == (0, 40)
    assert window_of(500, 999, 1000, 40) == (500, 540)
    assert window_of(990, 0, 1000, 40) == (960, 1000)  # slid back inside the prompt
    assert window_of(7, 3, 12, 40) == (0, 12)  # a short prompt is one window
    assert centred_on(500, 1000, 40) == 480 and centred_on(3, 1000, 40) == 0


def test_patterns_figure_in_a_window_has_positions_and_a_before_column():
    start, w = 100, 4
    block = np.tril(np.full((w, w), 0.1))
    before = np.array([0.9, 0.8, 0.7, 0.6])
    fig = patterns_figure(TOKENS, [("L0H1", block, before)], start=start, selected_pos=102)
    heat = next(d for d in fig.data if d.type == "heatmap")
    assert list(heat.x) == [99, 100, 101, 102, 103] and list(heat.y) == [100, 101, 102, 103]
    assert heat.z[2][0] == pytest.approx(0.7) and heat.z[2][3] == pytest.approx(0.1)
    assert np.isnan(heat.z[0][2])  # query 100 cannot see key 101
    assert fig.layout.yaxis.ticktext == (
        "100:&lt;bos&gt;",
        "101:A",
        "102:·b",
        "103:&lt;/script&gt;",
    )
    assert fig.layout.xaxis.ticktext[0] == "◀ before"
    assert (98.5, 103.5, 101.5, 102.5) in shapes(fig)  # the selected query's row
    grid = next(d for d in fig.data if d.type == "scatter")
    assert "all keys before 100: 0.800" in grid.text  # after "L0H1<br>query 101 → "
    assert grid.hovertemplate.startswith("L0H1<br>query %{y} → %{text}")
    assert "key 103: the future (masked)" in grid.text


def test_overview_figure_sends_the_view_sized_overview_as_binary_float32():
    """The overview the view asks for at 1000 tokens (63 x 63 cells of 16 positions, as the
    engine pools it: tests/test_view_windows.py) is sent as float32: it is redrawn on every
    click."""
    over = np.random.default_rng(1).random((63, 63))
    over[np.triu_indices(63, 1)] = np.nan  # the masked future
    fig = overview_figure("L0H1", over, 16, 1000, (960, 1000))
    z = np.asarray(fig.data[0].z)
    assert z.shape == (63, 63) and z.dtype == np.float32 and fig.data[0].dx == 16
    assert np.allclose(z, over, equal_nan=True)
    assert len(fig.to_json()) < 40_000


def test_overview_figure_places_cells_in_positions_and_outlines_the_window():
    over = np.random.default_rng(0).random((8, 8))
    fig = overview_figure("L0H1", over, 125, 1000, (960, 1000))
    heat = fig.data[0]
    assert heat.x0 == 62 and heat.dx == 125 and np.allclose(heat.z, over)  # float32
    assert (959.5, 999.5, 959.5, 999.5) in shapes(fig)
    clicks = fig.data[1]
    assert len(clicks.x) == 8 and clicks.x[-1] == 7 * 125 + 62


def test_lens_figure_in_a_window_labels_prompt_positions():
    res = fake_lens(start=50)
    fig = lens_figure(res, selected_pos=52, selected_layer=0)
    heat, grid = fig.data
    assert list(heat.x) == [50, 51, 52, 53]
    assert (
        fig.layout.xaxis.ticktext[0] == "50:&lt;bos&gt;"
    )  # shown as typed (components.safe.plot_text)
    assert (51.5, 52.5, -0.5, 0.5) in shapes(fig)
    assert final_top(res, 53) == {len(" r2p3"): " r2p3", 1: "x"} and final_top(res, 3) == {}


def test_a_32_by_32_head_grid_stays_readable():
    values = np.random.default_rng(0).random((32, 32)).tolist()
    res = fake_scores(n_layers=32, n_heads=32, values=values)
    fig = head_scores_figure(res, "prev_token", selected=(31, 31))
    assert fig.data[0].texttemplate == ""  # no numbers in 1024 cells (hover has them)
    assert fig.layout.height <= 170 + 22 * 32 and fig.layout.xaxis.dtick == 1
    assert "L31H31: " in fig.data[1].text[-1]
    dla = heads_figure(fake_dla(heads=values))
    assert dla.data[0].texttemplate == "" and dla.layout.height <= 190 + 22 * 32
