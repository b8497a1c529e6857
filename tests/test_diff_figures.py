"""Compare mode's pure parts (issue 14): what each side runs on, the links, and the diff
figures, which carry their numbers (read back here from synthetic engine answers)."""

from __future__ import annotations

import html
from urllib.parse import parse_qs

import pytest

from components import compare
from components import diff_figures as dfig
from components.compare import Comparison
from engine.schemas.analyses import DLAResult, Prediction
from engine.schemas.common import TokenInfo
from engine.schemas.diff import DiffComponentsResult, DiffToken
from engine.schemas.diff_latents import (
    AdiffLensResult,
    ChangedLatent,
    DiffLatentsResult,
    LatentChange,
    LatentDiffSetResult,
    LensLayer,
    LensReading,
    StrongChange,
)

TOKENS = [
    TokenInfo(pos=i, id=i, text=t, start=None, end=None)
    for i, t in enumerate(["<bos>", "The", " capital", " is"])
]


def pred(i: int, text: str, p: float) -> Prediction:
    return Prediction(id=i, text=text, prob=p, logit=p * 10)


def test_comparison_sides_and_pair_fields():
    none = Comparison()
    assert not none.active and none.mode == "nothing"
    with pytest.raises(ValueError):
        none.pair()
    assert none.run_on("b", "p") == ("p", "a")  # nothing compared: B falls back to A
    models = Comparison(model_b="assets/organism-chat")
    assert models.pair() == {"model_b": "b"} and models.mode == "another model"
    assert models.run_on("b", "p") == ("p", "b") and models.run_on("a", "p") == ("p", "a")
    assert models.label("b") == "B: organism-chat" and models.label("diff") == "B − A"
    prompts = Comparison(prompt_b="q")
    assert prompts.pair() == {"prompt_b": "q"} and prompts.run_on("b", "p") == ("q", "a")
    assert compare.side_of("diff", can_diff=False) == "a"
    assert compare.side_of("b", can_diff=False) == "b" and compare.side_of(None, True) == "a"


def test_links_keep_the_comparison_and_apply_changes():
    query = {"prompt": ["x y"], "model_b": ["assets/organism-chat"], "latent": ["3"]}
    q = parse_qs(compare.link_query(query, latent=7, side="b", sae=None))
    assert q == {"prompt": ["x y"], "model_b": ["assets/organism-chat"], "latent": ["7"],
                 "side": ["b"]}  # fmt: skip


def test_kl_strip_marks_the_top_position_and_carries_the_values():
    kls = [0.1, 0.3, 9.2]
    fig = dfig.kl_strip_figure(TOKENS[1:], kls, start=1, selected_pos=2)
    bar = fig.data[0]
    assert list(bar.x) == [1, 2, 3] and list(bar.y) == kls
    assert dfig.top_position(kls, 1) == 3 and bar.marker.color[2] == dfig.ACCENT
    assert bar.marker.color[1] == "#111"  # the selected one
    assert list(bar.text) == ["0.10", "0.30", "max 9.20"]
    assert list(fig.layout.xaxis.ticktext) == ["1:The", "2:·capital", "3:·is"]
    assert dfig.top_position([None, None]) is None
    b = [*TOKENS[:3], TokenInfo(pos=3, id=9, text=" was", start=None, end=None)]
    assert dfig.pair_tokens(TOKENS, b)[2:] == [" capital", " is→ was"]
    assert dfig.pair_tokens(TOKENS, None)[0] == "<bos>"


def test_changed_predictions_table_and_figure():
    a = [pred(5, " Canberra", 0.7), pred(6, " Sydney", 0.1)]
    b = [pred(6, " Sydney", 0.9), pred(7, " Perth", 0.05)]
    rows = dfig.changed_table(a, b)
    assert [r["id"] for r in rows] == [6, 5, 7]  # largest |change| first
    assert rows[0]["change"] == pytest.approx(0.8) and rows[1]["p_B"] is None
    fig = dfig.changed_predictions_figure(a, b, pos=3, token=" is", labels=("A: x", "B: y"))
    assert list(fig.data[0].x) == [0.1, 0.7] and list(fig.data[1].x) == [0.05, 0.9]
    assert [t.text for t in fig.layout.annotations] == ["A: x", "B: y"]


def test_resid_norms_and_difference_lens():
    rows = ["resid_pre 0", "resid_pre 1", "resid_post 1"]
    norms = [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    fig = dfig.resid_norms_figure(rows, norms, TOKENS[2:], start=2, selected=(1, 3))
    assert [list(r) for r in fig.data[0].z] == norms and list(fig.data[0].x) == [2, 3]
    assert "resid_pre 1 · pos 3 (·is): ‖B − A‖ = 3.000" in fig.data[1].text
    lens = [[DiffToken(id=1, text=" Sydney", value=2.5)], [], [DiffToken(id=2, text="a", value=1)]]
    fig = dfig.diff_lens_figure(rows, lens, pos=3, token=" is")
    assert fig.data[0].z[0][0] == 2.5 and fig.data[0].text[0][0] == "·Sydney"
    assert fig.data[0].z[1][0] is None


def test_heads_change_and_terms():
    a = {"heads": [[1.0, 0.0]], "mlps": [0.5], "attn_bias": [0.0], "embed": 0.1,
         "pos_embed": 0.0, "unembed_bias": 0.0, "total": 1.6}  # fmt: skip
    b = {**a, "heads": [[0.0, 2.0]], "mlps": [1.5], "total": 3.6}
    fig = dfig.heads_change_figure(a["heads"], b["heads"], target=" Sydney", selected=(0, 1))
    assert [list(r) for r in fig.data[0].z] == [[-1.0, 2.0]]
    assert "L0H1: A +0.000 · B +2.000 · B − A +2.000" in fig.data[1].text
    terms = dfig.component_terms(
        DiffComponentsResult.model_construct(a=DLAResult.model_construct(**a),
                                             b=DLAResult.model_construct(**b))
    )  # fmt: skip
    assert ("MLP 0", 0.5, 1.5) in terms and terms[-1] == ("total", 1.6, 3.6)
    assert ("all heads", 1.0, 2.0) in terms
    bars = dfig.terms_change_figure(terms, target=" Sydney")
    assert list(bars.data[1].y)[-1] == 3.6


def test_pattern_difference_blanks_the_future():
    a = [[1.0, 0.0], [0.5, 0.5]]
    b = [[1.0, 0.0], [0.2, 0.8]]
    fig = dfig.pattern_diff_figure(["<bos>", "x"], a, b, start=4, head="L0H1")
    z = fig.data[0].z
    assert z[0][1] is None and z[1][0] == pytest.approx(-0.3) and z[1][1] == pytest.approx(0.3)
    assert list(fig.data[0].x) == [4, 5]


def test_latent_rows_from_the_engine_answers():
    lat = DiffLatentsResult.model_construct(
        strongest=[StrongChange(index=3, label="capitals", a=0.0, b=2.0, delta=2.0, pos=4,
                                frequency=0.1)],
        top=[[], [ChangedLatent(index=1, a=1.0, b=0.0, delta=-1.0)]],
    )  # fmt: skip
    rows = dfig.strongest_rows(lat)
    assert rows == [{"index": 3, "label": "capitals", "a": 0.0, "b": 2.0, "delta": 2.0, "pos": 4}]
    assert dfig.latent_rows_at(lat, 1)[0]["delta"] == -1.0 and dfig.latent_rows_at(lat, 9) == []
    fig = dfig.latent_changes_figure(rows, title="t", subtitle="s")
    assert list(fig.data[1].x) == [2.0] and fig.data[0].y[0] == "#3 capitals @4"
    ex = {"text": 0, "tokens": ["a", " b"], "deltas": [0.0, 1.0], "max_pos": 1}
    change = {"index": 9, "label": "l", "mean_a": 0.1, "mean_b": 0.4, "delta": 0.3,
              "freq_a": 0.0, "freq_b": 0.1, "examples": [ex]}  # fmt: skip
    rows = dfig.set_rows(
        LatentDiffSetResult.model_construct(increased=[LatentChange(**change)], decreased=[])
    )
    assert rows[0]["example"] == "a b" and rows[0]["b"] == 0.4
    layer = {"hook": "blocks.0.hook_resid_pre", "norm": 1.5, "top_tokens": [{"id": 1, "text": "x"}],
             "top_values": [0.7]}  # fmt: skip
    mean = LensReading(pos=None, n=1, layers=[LensLayer(**layer, layer=0, norm_a=1.0, bottom_tokens=[],
                                                        bottom_values=[])], saes=[])  # fmt: skip
    names, top = dfig.adiff_rows(AdiffLensResult.model_construct(mean=mean))
    assert names == ["blocks.0.hook_resid_pre (‖Δ‖ 1.50)"]
    assert top == [[DiffToken(id=1, text="x", value=0.7)]]


def test_generation_kl_figure():
    fig = dfig.generation_kl_figure([9.2, 0.1], ("A", "B"))
    assert list(fig.data[0].y) == [9.2, 0.1] and "A ‖ B, along A's text" in fig.layout.title.text


def test_a_model_b_with_another_tokenizer_is_refused_with_the_reason(org, tiny_model_dir):
    """The organism in slot a, a random GPT-2 (GPT-2's tokenizer) in slot b: the sidebar's
    check answers the engine's reason; prompt B of another length is refused too, and
    prompt B of as many tokens is comparable."""
    from fastapi.testclient import TestClient

    from engine.api import create_app
    from engine.client import EngineClient

    with TestClient(create_app(org)) as api:
        client = EngineClient("http://testserver")
        client._http = api
        org.load(str(tiny_model_dir), slot="b")  # (a test directory: outside the data dirs)
        try:
            why = compare.not_comparable(
                client, "The capital of France is", Comparison(model_b="x")
            )
            assert (
                why is not None
                and "cannot be compared token by token: their unembeddings differ" in why
            )
            longer = Comparison(prompt_b="The capital of the land of France is")
            assert "tokens" in compare.not_comparable(client, "The capital of France is", longer)
            same = Comparison(prompt_b="The capital of Spain is")
            assert compare.not_comparable(client, "The capital of France is", same) is None
        finally:
            org.unload("b")


def test_text_set_subtitles_show_a_file_name_as_typed():
    """The text-set figures' subtitles name the user's files: plotly's tags there are text."""
    hostile = "12 texts of <b>x</b>&<a href='javascript:alert(1)'>y</a>.txt"
    rows = [{"index": 1, "label": "l", "a": 0.0, "b": 1.0}]
    figs = [
        dfig.latent_changes_figure(rows, title="t", subtitle=hostile),
        dfig.layer_tokens_figure(
            ["L0"], [[DiffToken(id=1, text="a", value=1.0)]], title="t", subtitle=hostile
        ),  # fmt: skip
    ]
    for fig in figs:
        shown = fig.layout.title.subtitle.text
        assert "<" not in shown and ">" not in shown
        assert html.unescape(shown) == hostile  # plotly turns the entities back into characters
