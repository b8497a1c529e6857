"""Pure figure builders and export: numbers in the figure equal the analysis result."""

from __future__ import annotations

import pytest

from components.export import caption_text, with_caption
from components.prompt_figures import predictions_figure, predictions_table, tokens_html
from components.theme import show_token
from engine.schemas.analyses import PredictionsResult


def fake_result(n=4, k=3) -> PredictionsResult:
    tokens = [
        {"pos": i, "id": 10 + i, "text": t, "start": None, "end": None}
        for i, t in enumerate(["<bos>", "A", " b", "<c>"][:n])
    ]
    top = [
        [{"id": j, "text": f" t{p}{j}", "prob": 0.5 / (j + 1), "logit": 1.0 - j} for j in range(k)]
        for p in range(n)
    ]
    loss = [None] + [1.0 + p for p in range(1, n)]
    return PredictionsResult.model_validate(
        {"tokens": tokens, "top": top, "loss": loss, "mean_loss": 2.0, "stop": n}
    )


def test_predictions_figure_carries_the_numbers():
    res = fake_result()
    fig = predictions_figure(res, selected_pos=2)
    bar, heat = fig.data
    assert list(bar.y) == [0, 2.0, 3.0, 4.0]
    assert [list(r) for r in heat.z] == [[res.top[p][j].prob for p in range(4)] for j in range(3)]
    assert heat.text[0][1] == show_token(" t10")
    assert fig.layout.xaxis2.ticktext == (
        "&lt;bos&gt;",
        "A",
        "·b",
        "&lt;c&gt;",
    )  # plotly shows <bos>
    assert bar.marker.color[2] != bar.marker.color[1]  # the selected position stands out


def test_predictions_table_is_the_selected_position():
    df = predictions_table(fake_result(), 3)
    assert list(df["token"]) == ["·t30", "·t31", "·t32"]
    assert df["probability"].iloc[0] == pytest.approx(0.5)


def test_tokens_html_escapes_and_marks_selection():
    html = tokens_html(fake_result().tokens, fake_result().loss, selected=3)
    assert "&lt;c&gt;" in html and "<c>" not in html.split("</style>")[1]
    assert html.count("2px solid") == 1


def test_caption_stamp():
    cap = caption_text("organism", "x" * 200, {"layer": 2})
    assert cap.startswith("Model: organism") and "layer=2" in cap and "..." in cap
    fig = with_caption(predictions_figure(fake_result()), cap)
    assert any("Model: organism" in a.text for a in fig.layout.annotations)
    assert fig.layout.height > predictions_figure(fake_result()).layout.height


def test_show_token_makes_whitespace_visible():
    assert show_token(" a\n\t") == "·a⏎⇥" and show_token("") == "∅"
