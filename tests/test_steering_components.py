"""Steering setups (URL, file, add_latent links) and the latent figure builders."""

from __future__ import annotations

import pytest

from components import latent_figures as lf
from components import steering_setup as ss
from engine.schemas.saes import LatentDetailResult, SaeLatentsResult
from engine.schemas.steering import StreamEvent

SETUP = {
    "vectors": [
        {"kind": "sae_latent", "sae": "blocks.1.hook_resid_post", "index": 7, "coefficient": 3.5},
        {"kind": "contrastive", "positive": ["a happy day"], "negative": ["a sad day"],
         "hook": "blocks.0.hook_resid_post", "coefficient": -2.0,
         "condition": {"sae": "blocks.1.hook_resid_post", "index": 3, "threshold": 0.5}},
    ]
}  # fmt: skip


def test_setup_round_trips_through_url_and_file():
    url = ss.to_url(SETUP)
    assert "=" not in url and "/" not in url  # URL-safe
    back = ss.from_url(url)
    assert back["vectors"][0]["index"] == 7 and back["vectors"][1]["condition"]["threshold"] == 0.5
    assert ss.from_file(ss.to_file(SETUP)) == back
    assert ss.from_url("not base64 json") == ss.empty()


def test_bad_setup_file_says_why():
    with pytest.raises(ValueError, match="not JSON"):
        ss.from_file(b"{")
    with pytest.raises(ValueError, match="not a steering setup"):
        ss.from_file(b'{"vectors": [{"kind": "magic"}]}')


def test_add_latent_links():
    v = ss.parse_add_latent("sae:blocks.1.hook_resid_post:12", 5.0)
    assert v == {"kind": "sae_latent", "sae": "blocks.1.hook_resid_post", "index": 12,
                 "coefficient": 5.0, "positive": [], "negative": [], "label": ""}  # fmt: skip
    t = ss.parse_add_latent("transcoder:2:45")
    assert (t["kind"], t["layer"], t["index"]) == ("transcoder_latent", 2, 45)
    for bad in ("sae:12", "neuron:1:2", "transcoder:x:3", "sae:blocks.1.hook_resid_post:-1"):
        with pytest.raises(ValueError):
            ss.parse_add_latent(bad)


def test_collect_stream_events():
    events = [StreamEvent.model_validate(e) for e in [
        {"type": "start", "vectors": []},
        {"type": "token", "step": 0, "base": {"id": 1, "text": " a"}, "steered": {"id": 2, "text": " b"}, "kl": 0.5},
        {"type": "token", "step": 1, "steered": {"id": 3, "text": " c"}, "kl": 0.1},
        {"type": "done", "tokens_per_s": 10.0},
    ]]  # fmt: skip
    got = ss.collect(events)
    assert got == {"base": " a", "steered": " b c", "kl": [0.5, 0.1], "end": events[-1]}


def token(pos: int, text: str, start: int | None) -> dict:
    return {"pos": pos, "id": pos, "text": text, "start": start, "end": None}


SAE = {"id": "h", "origin": "bundled", "hook_name": "blocks.1.hook_resid_post", "d_in": 8,
       "d_sae": 16, "architecture": "standard", "has_examples": False}  # fmt: skip
RESULT = SaeLatentsResult.model_validate({
    "sae": SAE,
    "tokens": [token(0, "<bos>", None), token(1, " x", 0), token(2, " y", 2)],
    "top": [[{"index": 9, "act": 50.0}], [{"index": 3, "act": 2.0}, {"index": 5, "act": 1.0}],
            [{"index": 5, "act": 4.0}]],
    "l0": [1, 2, 1], "latent": None, "latent_acts": None, "strongest": [],
})  # fmt: skip


def test_token_latent_figure_leaves_bos_out():
    fig = lf.token_latent_figure(RESULT, {5: "five"})
    assert fig.layout.meta["latents"] == [5, 3]  # by max activation; 9 fires only at BOS
    assert [list(r) for r in fig.data[0].z] == [[None, 1.0, 4.0], [None, 2.0, None]]
    assert list(fig.layout.yaxis.ticktext)[0] == "#5 five"


def test_panel_parts_and_logit_effect():
    detail = LatentDetailResult.model_validate({
        "source": "sae", "d_latent": 16, "acts": [],
        "key": "sae:h", "index": 4, "reads": "h", "writes": "h", "decoder_norm": 1.0,
        "max_act": 2.0, "frequency": 0.01, "label": "'Paris'", "label_origin": "shipped",
        "examples": [{"tokens": ["a", "b"], "acts": [0.0, 2.0], "max_pos": 1}],
        "examples_over": "shipped examples", "tokens": [],
        "histogram": {"edges": [0.1, 1.0, 10.0], "counts": [0, 3], "over": "x"},
        "top_logits": [{"id": 1, "text": " Paris"}], "top_values": [0.5],
        "bottom_logits": [{"id": 2, "text": " Rome"}], "bottom_values": [-0.4],
        "neuronpedia": {"model_id": "m", "source": "s", "url": "https://neuronpedia.org/m/s/4"},
    })  # fmt: skip
    parts = lf.panel_parts(detail)
    assert parts["label"] == "'Paris'" and parts["neuronpedia_url"].endswith("/m/s/4")
    assert "font-weight: 700" in parts["examples_html"] and "fires on 1.00%" in parts["facts"]
    bars = parts["logit_figure"].data[0]
    assert list(bars.x) == [0.5, -0.4]
    assert list(parts["histogram_figure"].data[0].y) == [3]
