"""Issue 12, as a hostile web page and a careless request would try it: Host and origin checks
(DNS rebinding, cross-site POSTs), file confinement (``/etc/shadow``, ``..``, ``~``, symlinks),
HTML injection through labels and texts, and the API contract (token first, bounded input,
one error envelope)."""

from __future__ import annotations

import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from markdown_it import MarkdownIt
from pydantic import BaseModel

from engine import paths, text_sources
from engine.api import create_app
from engine.client import EngineClient, EngineRequestError
from engine.errors import EngineError
from engine.schemas.analyses import LensTargetsResult
from engine.schemas.common import TokenInfo
from engine.schemas.saes import Example, ExamplesJobParams, LatentDetailResult
from engine.schemas.steering import ResolvedVector, StreamEvent
from engine.service import Engine
from engine.settings import EngineSettings

LOOPBACK = "http://127.0.0.1:8765"
EVIL = "<img src=http://example.com/x onerror=alert(1)>"


@pytest.fixture
def make_api(tmp_path):
    """An API over an engine without a model (enough for the guard), with explicit hosts."""
    made: list[Engine] = []

    def make(base_url: str = LOOPBACK, **settings) -> TestClient:
        settings.setdefault("allowed_hosts", [])
        eng = Engine(EngineSettings(cache_dir=tmp_path / "cache", **settings), load=False)
        made.append(eng)
        return TestClient(create_app(eng), base_url=base_url)

    yield make
    for eng in made:
        eng.close()


def code(resp) -> str:
    return resp.json()["error"]["code"]


# --- Host: DNS rebinding ----------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST"])
def test_loopback_engine_answers_its_own_names(make_api, host):
    assert make_api().get("/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "attacker.example:8765",
        "attacker.example",
        "10.0.0.5:8765",
        "",
        "127.0.0.1.evil.com:8765",
        "127.0.0.1:8765@evil.com",
        "127.0.0.1:8765, evil.com",
        "[::1",
        "localhost:8765/x",
        "::1",
    ],
)
def test_loopback_engine_refuses_any_other_host(make_api, host):
    r = make_api().get("/health", headers={"host": host})
    assert r.status_code == 403 and code(r) == "host_not_allowed"
    assert "allowed_hosts" in r.json()["error"]["message"]


def test_a_rebinding_page_cannot_start_a_job_or_read_files(make_api):
    api = make_api()
    r = api.post("/jobs/batch_loss", json={"texts": ["x"]}, headers={"host": "evil.test:8765"})
    assert r.status_code == 403 and api.get("/jobs").json() == []


def test_beyond_loopback_the_configured_host_and_token_work(make_api):
    api = make_api(
        "http://gpu-box:8765", host="10.1.2.3", token="s3cret", allowed_hosts=["gpu-box"]
    )
    auth = {"authorization": "Bearer s3cret"}
    assert api.get("/health", headers=auth).status_code == 200
    assert api.get("/health", headers={**auth, "host": "10.1.2.3:8765"}).status_code == 200
    assert code(api.get("/health")) == "unauthorized"
    assert code(api.get("/health", headers={**auth, "host": "evil.test"})) == "host_not_allowed"
    assert code(api.get("/health", headers={**auth, "host": "127.0.0.1"})) == "host_not_allowed"


def test_the_apps_client_still_works(make_api):
    """The app's EngineClient sends Host 127.0.0.1:<port> (and a token when set)."""
    api = make_api(token="tok")
    client = EngineClient(LOOPBACK, token="tok")
    client._http = TestClient(api.app, base_url=client.url, headers=dict(client._http.headers))
    assert client.health().status == "ok"
    assert client.clear_cache()["disk_items"] == 0
    wrong = EngineClient(LOOPBACK, token="nope")
    wrong._http = TestClient(api.app, base_url=wrong.url, headers=dict(wrong._http.headers))
    with pytest.raises(EngineRequestError) as e:
        wrong.health()
    assert e.value.status == 401


# --- cross-site requests ------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://attacker.example"},
        {"origin": "null"},
        {"origin": "http://127.0.0.1:8501"},  # another local site (port) is another origin
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
def test_a_bodiless_cross_site_post_does_not_clear_the_cache(make_api, headers):
    api = make_api()
    api.app.state.engine.cache.set("k", b'{"a": 1}')
    r = api.post("/cache/clear", headers=headers)
    assert r.status_code == 403 and code(r) == "cross_site"
    assert api.app.state.engine.cache.get("k") == b'{"a": 1}'


def test_same_origin_and_programs_are_served(make_api):
    api = make_api()
    same = {"origin": LOOPBACK, "sec-fetch-site": "same-origin"}
    assert api.post("/cache/clear", headers=same).status_code == 200
    assert api.get("/health", headers={"sec-fetch-site": "none"}).status_code == 200
    assert api.post("/cache/clear").status_code == 200  # no Origin: curl, the app's client


# --- the contract ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/health", "/nowhere"])
def test_every_path_needs_the_token_when_set(make_api, path):
    api = make_api(token="tok")
    r = api.get(path)
    assert r.status_code == 401 and code(r) == "unauthorized"
    ok = api.get(path, headers={"authorization": "Bearer tok"})
    assert ok.status_code == (404 if path == "/nowhere" else 200)


def test_no_token_is_401_before_the_body_is_read(make_api):
    api = make_api(token="tok")
    bad = {"content-type": "application/json"}
    r = api.post("/analysis/predictions", content=b'{"prompt": ', headers=bad)
    assert r.status_code == 401 and code(r) == "unauthorized"
    r = api.post("/analysis/predictions", content=b'{"prompt": ',
                 headers={**bad, "authorization": "Bearer tok"})  # fmt: skip
    assert r.status_code == 400 and code(r) == "malformed_json"


def test_404_405_and_validation_errors_use_the_envelope(api):
    for r, status, want in [
        (api.get("/no/such/route"), 404, "not_found"),
        (api.get("/cache/clear"), 405, "method_not_allowed"),
        (api.get("/graphs/jobs/x/wait?timeout_s=abc"), 422, "bad_request"),
        (api.post("/tokenize", content=b"[1,", headers={"content-type": "application/json"}),
         400, "malformed_json"),
    ]:  # fmt: skip
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"] == want
        assert set(body["error"]) == {"code", "message", "detail"} and body["error"]["message"]


LONG = "a" * 5000


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/saes", {"path": LONG}),
        ("POST", "/saes", {"release": LONG, "sae_id": "x"}),
        ("POST", "/analysis/sae_latents", {"prompt": "hi", "params": {"sae": LONG}}),
        ("POST", "/analysis/latent_detail", {"prompt": "hi", "params": {"sae": LONG, "index": 0}}),
        ("POST", "/jobs/latent_examples", {"sae": "s", "path": LONG}),
        ("POST", "/jobs/load_model", {"name": LONG}),
        ("POST", "/steering/generate", {"prompt": "hi", "seed": 1e30}),
        ("POST", "/steering/generate", {"prompt": "hi", "seed": -1}),
        ("POST", "/steering/generate", {"prompt": "hi", "seed": 2**64}),
        ("POST", "/steering/generate",
         {"prompt": "hi", "vectors": [{"kind": "contrastive", "hook": LONG}]}),
        ("POST", "/steering/generate", {"prompt": "hi", "vectors": [
            {"kind": "contrastive", "condition": {"threshold": "Infinity"}}]}),
        ("PUT", "/graphs/abc/qparams", {"pinnedIds": [LONG]}),
        ("POST", "/graphs/cost", {"prompt": "hi", "target": LONG}),
        ("POST", "/graphs/cost", {"prompt": "hi", "target": 10**40}),
        ("GET", "/saes/latent/neuronpedia?sae=x&index=99999999999999", None),
    ],
)  # fmt: skip
def test_absurd_values_are_a_clean_4xx_at_request_time(api, method, path, body):
    r = api.request(method, path, json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["message"]
    assert api.get("/health").status_code == 200


# --- bad job input is refused at submit -------------------------------------------------------
@pytest.mark.parametrize(
    "kind, params, status",
    [
        ("batch_loss", {"texts": []}, 422),
        ("batch_loss", {"texts": ["ok", ""]}, 422),
        ("batch_loss", {"texts": ["bell \x07"]}, 422),
        ("batch_loss", {"texts": ["word " * 500]}, 422),
        ("batch_loss", {"texts": "not a list"}, 422),
        ("batch_loss", {}, 422),
        ("load_model", {"name": ""}, 422),
        ("load_model", {"name": "gpt2", "dtype": "float8"}, 422),
        ("load_model", {"name": "gpt2", "device": "tpu; rm -rf /"}, 422),
        ("load_model", {"name": "/etc"}, 403),
        ("load_model", {"name": "~"}, 403),
        ("load_model", {"name": "../../.."}, 403),
        ("load_model", {"name": "name with spaces!"}, 422),
        ("attribution_graph", {"prompt": ""}, 422),
        ("attribution_graph", {"prompt": "hi", "max_feature_nodes": 0}, 422),
        ("attribution_graph", {"prompt": "hi", "batch_size": 10**9}, 422),
        ("attribution_graph", {"prompt": "hi", "node_threshold": 2}, 422),
        ("attribution_graph", {"prompt": "hi", "desired_logit_prob": 0}, 422),
        ("attribution_graph", {"prompt": "hi"}, 409),  # the tiny model has no transcoders
        ("latent_examples", {"sae": "s"}, 422),  # no source
        ("latent_examples", {"sae": "s", "path": "a", "dataset": "b"}, 422),
        ("latent_examples", {"sae": "nope", "path": "a.txt"}, 404),  # no such SAE
        ("latent_examples", {"sae": "s", "dataset": "d", "max_texts": 0}, 422),
        ("latent_examples", {"sae": "s", "dataset": "d", "top_k": 10**6}, 422),
        ("latent_examples", {"sae": "s", "dataset": "d", "split": ""}, 422),
        ("latent_examples", {"sae": "s", "dataset": "d", "column": "c" * 300}, 422),
        ("latent_examples", {"sae": "s", "dataset": "d", "extra": 1, "max_texts": -5}, 422),
        ("no_such_kind", {}, 404),
    ],
)
def test_bad_job_input_is_a_4xx_at_submit(api, kind, params, status):
    before = len(api.get("/jobs").json())
    r = api.post(f"/jobs/{kind}", json=params)
    assert r.status_code == status, r.text
    assert len(api.get("/jobs").json()) == before  # no job was accepted


# --- file confinement -----------------------------------------------------------------------
@pytest.fixture
def data(tmp_path) -> tuple[EngineSettings, Path]:
    root = tmp_path / "data"
    root.mkdir()
    (root / "texts.txt").write_text("one\ntwo\n")
    (root / "plain_dir").mkdir()
    (root / "plain_dir" / "rows.jsonl").write_text('{"text": "x"}\n')
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("password=hunter2\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "secret_link.txt").symlink_to(outside / "secret.txt")
    return EngineSettings(data_dirs=[root], cache_dir=tmp_path / "c"), root


def check(settings, **source) -> ExamplesJobParams:
    return text_sources.check(ExamplesJobParams(sae="s", **source), settings)


@pytest.mark.parametrize(
    "source",
    [
        {"path": "/etc/shadow"},
        {"path": "/etc/no-such-file-here"},  # the same answer whether it exists or not
        {"path": "/etc/passwd"},
        {"path": "../outside/secret.txt"},
        {"path": "escape/secret.txt"},  # a symlinked directory inside pointing outside
        {"path": "secret_link.txt"},  # a symlinked file
        {"path": "~/.ssh/id_rsa"},
        {"dataset": ".."},
        {"dataset": "~"},
        {"dataset": "/"},
        {"dataset": "/etc"},
        {"dataset": "escape"},
    ],
)
def test_files_outside_the_data_dirs_are_a_403_naming_the_setting(data, source):
    settings, _ = data
    with pytest.raises(EngineError) as e:
        check(settings, **source)
    assert e.value.status == 403 and e.value.code == "path_not_allowed"
    assert "data_dirs" in e.value.message and "--data-dir" in e.value.message
    assert "hunter2" not in e.value.message


def test_existence_outside_is_not_revealed(data):
    settings, _ = data
    answers = []
    for p in ("/etc/passwd", "/etc/definitely-not-here"):
        with pytest.raises(EngineError) as e:
            check(settings, path=p)
        answers.append((e.value.status, e.value.code, e.value.message.replace(p, "P")))
    assert answers[0] == answers[1]


def test_inside_the_data_dirs_reads_and_directories_are_not_walked(data):
    settings, root = data
    assert check(settings, path="texts.txt").path == str(root / "texts.txt")
    assert check(settings, path=str(root / "texts.txt")).path == str(root / "texts.txt")
    for source, want in [({"path": "plain_dir"}, "not_a_file"),
                         ({"dataset": "plain_dir"}, "not_a_dataset_dir"),
                         ({"dataset": str(root)}, "not_a_dataset_dir"),
                         ({"path": "missing.txt"}, "no_such_file")]:  # fmt: skip
        with pytest.raises(EngineError) as e:
            check(settings, **source)
        assert e.value.code == want and e.value.status in (404, 422)
    assert check(settings, dataset="plain_dir/rows.jsonl").dataset == str(
        root / "plain_dir/rows.jsonl"
    )
    assert check(settings, dataset="someone/some-dataset").dataset == "someone/some-dataset"


def test_the_repo_assets_and_the_models_directory_are_readable(data, tiny_model_dir):
    settings, _ = data
    settings.model = str(tiny_model_dir)
    assert paths.confine(str(tiny_model_dir / "config.json"), settings).is_file()
    organism = Path(__file__).resolve().parents[1] / "assets"
    assert paths.confine(str(organism), settings) == organism


def test_model_and_sae_directories_over_http_are_confined(api, engine, tmp_path):
    before = len(api.get("/jobs").json())
    for name in ("/etc", str(tmp_path), "~/.cache/huggingface"):
        r = api.post("/jobs/load_model", json={"name": name})
        assert r.status_code == 403 and code(r) == "path_not_allowed", name
    r = api.post("/saes", json={"path": "/etc"})
    assert r.status_code in (403, 409)  # 409: the tiny model has no SAEs support; never a read
    assert len(api.get("/jobs").json()) == before


def test_examples_job_over_http_refuses_etc_shadow_before_accepting(org, tmp_path):
    hook = "blocks.1.hook_resid_post"
    with TestClient(create_app(org)) as api:
        before = len(api.get("/jobs").json())
        answers = set()
        for p in ("/etc/shadow", "/etc/nonexistent-file", "/root/.bashrc"):
            r = api.post("/jobs/latent_examples", json={"sae": hook, "path": p})
            assert r.status_code == 403, r.text
            answers.add(code(r))
        for d in ("..", "~", "/"):
            r = api.post("/jobs/latent_examples", json={"sae": hook, "dataset": d})
            assert r.status_code == 403, r.text
        r = api.post("/saes", json={"path": "/etc"})
        assert r.status_code == 403 and code(r) == "path_not_allowed"
        assert answers == {"path_not_allowed"}
        assert len(api.get("/jobs").json()) == before


def test_reading_stops_when_the_job_is_cancelled(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("a line of text\n" * 10_000)
    calls = []

    def tick():
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError):
        text_sources.read_file(str(big), 1_000_000, tick)
    assert len(calls) == 4  # checked every 256 lines, stopped at once


def test_reading_a_file_reads_only_what_it_needs(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("".join(f"text {i}\n" for i in range(50_000)))
    texts, _, _ = text_sources.read_file(str(big), 3)
    assert texts == ["text 0", "text 1", "text 2"]


# --- HTML injection -------------------------------------------------------------------------
def _detail(label: str = EVIL) -> LatentDetailResult:
    tok = {"pos": 0, "id": 1, "text": EVIL, "start": 0, "end": 3}
    return LatentDetailResult.model_validate({
        "source": "sae", "key": f"sae:{EVIL}", "index": 3, "reads": EVIL, "writes": EVIL,
        "d_latent": 8, "label": label, "label_origin": EVIL, "tokens": [tok],
        "acts": [1.0], "max_act": 1.0, "frequency": 0.1,
        "examples": [{"tokens": [EVIL, "b"], "acts": [1.0, 0.5], "max_pos": 0}],
        "examples_over": f"200 texts of {EVIL} [train].text", "histogram": None,
        "top_logits": [{"id": 1, "text": EVIL}], "top_values": [1.0],
        "bottom_logits": [{"id": 2, "text": EVIL}], "bottom_values": [-1.0],
        "decoder_norm": 1.0, "neuronpedia": None,
    })  # fmt: skip


class _Tags(HTMLParser):
    def __init__(self, html_text: str):
        super().__init__()
        self.tags: set[str] = set()
        self.feed(html_text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)


def tags(html_text: str) -> set[str]:
    return _Tags(html_text).tags


def test_latent_panel_html_escapes_labels_texts_and_dataset_names():
    from components import latent_figures as lf

    parts = lf.panel_parts(_detail())
    for key in ("label_html", "examples_over_html", "examples_html"):
        assert tags(parts[key]) <= {"b", "span", "div"}, key
        assert "&lt;img" in parts[key], key  # shown as text
    assert tags(lf.colored_tokens_html([EVIL, "x"], [1.0, 0.0])) <= {"span", "div"}
    for key in ("title_md", "facts_md"):
        assert tags(MarkdownIt().render(parts[key])) <= {"p"}, key


def test_graph_panel_and_prompt_html_escape_token_text():
    from components import graph_panel
    from components.prompt_figures import tokens_html

    ex = Example(tokens=[EVIL], acts=[1.0], max_pos=0)
    assert "img" not in tags(graph_panel._example_html(ex))
    toks = [TokenInfo(pos=0, id=1, text=EVIL, start=0, end=1)]
    assert "img" not in tags(tokens_html(toks, [None], 0))


@pytest.mark.parametrize(
    "text", [EVIL, "![x](http://example.com/x.png)", "[click](http://example.com)", "a\n# big"]
)
def test_markdown_escaping_leaves_no_image_link_or_block(text):
    from components.safe import md

    assert tags(MarkdownIt().render(md(text))) <= {"p"}
    assert tags(MarkdownIt().render(text)) - {"p"}  # the test text does make tags unescaped


def test_unsafe_allow_html_is_left_only_where_reviewed():
    """Every ``unsafe_allow_html`` call site is reviewed (each escapes what it shows)."""
    root = Path(__file__).resolve().parents[1]
    sites = sorted(
        f"{p.relative_to(root)}"
        for d in ("views", "components")
        for p in (root / d).glob("*.py")
        if "unsafe_allow_html=True" in p.read_text()
    )
    assert sites == ["views/prompt.py", "views/steering.py"]


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_symlinked_data_dir_itself_is_fine(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "t.txt").write_text("hello\n")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    settings = EngineSettings(data_dirs=[tmp_path / "link"], cache_dir=tmp_path / "c")
    assert check(settings, path="t.txt").path == str(real / "t.txt")


def test_names_relative_to_the_working_directory_are_not_read(data, tmp_path, monkeypatch, api):
    """A bare name is a data-dir file or a hub name, never a file where the engine runs."""
    settings, _ = data
    cwd = tmp_path / "cwd"
    (cwd / "mymodel").mkdir(parents=True)
    (cwd / "mymodel" / "config.json").write_text("{}")
    (cwd / "rows.csv").write_text("text\nsecret row\n")
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(text_sources, "hub_reachable", lambda timeout: False)
    p = check(settings, dataset="other.csv")
    assert p.dataset == "other.csv"  # taken as a hub name...
    with pytest.raises(EngineError) as e:
        text_sources.read(p, settings)
    assert e.value.status == 503  # ...so never read from the working directory
    with pytest.raises(EngineError) as e:  # a name that is a file there is refused outright
        check(settings, dataset="rows.csv")
    assert e.value.status == 403
    r = api.post("/jobs/load_model", json={"name": "mymodel"})
    assert r.status_code == 403 and code(r) == "path_not_allowed"


def test_circuitsvis_page_keeps_token_text_inside_its_script():
    import json as _json

    from components.attention_vis import _props, attention_heads_html

    toks = [EVIL, "</script><img src=http://example.com/y>", "<!--<script>"]
    page = attention_heads_html(toks, [[[1.0, 0, 0], [0.5, 0.5, 0], [0.3, 0.3, 0.4]]], ["L0H0"],
                                bundle_url="/app/static/cv.js")  # fmt: skip
    assert "img" not in tags(page) and page.count("<script") == 2
    assert _json.loads(_props(toks, [], []))["tokens"] == toks  # the data itself is unchanged


LINK = '<a href="http://example.com/x">y</a>'
OUR_TAGS = {"<br>", "<b>", "</b>", "<extra>", "</extra>"}  # what our figure builders write


def _hostile(obj):
    """`obj` with a link prepended to every outside string (token text, labels, names)."""
    if isinstance(obj, BaseModel):
        return type(obj).model_validate(_hostile(obj.model_dump()))
    if isinstance(obj, dict):
        return {
            k: LINK + v if k in ("text", "label", "clerp", "hook_name", "prompt") and
            isinstance(v, str) else _hostile(v)
            for k, v in obj.items()
        }  # fmt: skip
    if isinstance(obj, list):
        return [_hostile(v) for v in obj]
    return obj


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _strings(v)
    elif hasattr(obj, "tolist"):
        yield from _strings(obj.tolist())


def _assert_no_outside_tags(fig):
    import re

    texts = list(_strings(fig.to_plotly_json()))
    found = [t for t in texts if set(re.findall(r"</?[A-Za-z][^>]*>", t)) - OUR_TAGS]
    assert not found, found[:3]
    assert any("&lt;a" in t for t in texts)  # the link is there, shown as text


def test_plotly_figures_show_outside_text_as_text_never_as_tags():
    """Plotly renders <a href>, <span style>, <b> in titles, ticks, hover text, annotations and
    legend names: token text, latent labels, SAE names, prompts and supernode names are escaped."""
    from components import dla_figures, graph_figures, latent_figures, lens_figures
    from components.attention_figures import patterns_figure
    from components.export import caption_text, with_caption
    from components.prompt_figures import predictions_figure
    from tests.test_components import fake_result
    from tests.test_steering_components import RESULT
    from tests.test_view_figures import fake_dla, fake_lens

    bad = _hostile
    lens = bad(fake_lens())
    figs = [
        predictions_figure(bad(fake_result())),
        lens_figures.lens_figure(lens),
        lens_figures.traces_figure(LensTargetsResult.model_validate(
            {"stage": "resid_post", "pos": 0, "rows": ["L0"], "row_layers": [0], "traces": [
                {"token": bad({"id": 5, "text": " Paris"}), "prob": [0.1], "logit": [1.0],
                 "rank": [3]}]})),
        dla_figures.heads_figure(bad(fake_dla({"id": 1, "text": "b"}))),
        dla_figures.terms_figure(bad(fake_dla())),
        patterns_figure([LINK, "x"], [("L0H0", np.array([[1.0, 0.0], [0.5, 0.5]]), None)]),
        with_caption(lens_figures.lens_figure(fake_lens()), caption_text("m", LINK, {})),
    ]  # fmt: skip
    latents = bad(RESULT)
    figs.append(latent_figures.token_latent_figure(latents, {3: LINK}))
    figs.append(latent_figures.logit_effect_figure(bad(_detail("x"))))
    node = {"node_id": "0_3_1", "feature_type": "cross layer transcoder", "layer": "0",
            "ctx_idx": 1, "influence": 0.1, "activation": 1.0, "clerp": LINK}  # fmt: skip
    emb = {"node_id": "E_5_0", "feature_type": "embedding", "layer": "E", "ctx_idx": 0}
    doc = {"nodes": [node, emb], "links": [], "metadata": {"prompt": LINK, "prompt_tokens": [LINK]}}
    figs.append(graph_figures.graph_figure(doc, supernodes=[[LINK, "0_3_1"]]))
    for fig in figs:
        _assert_no_outside_tags(fig)


def test_markdown_html_stays_one_block_whatever_the_text():
    """HTML given to st.markdown is one HTML block only while it has no blank line: a prompt
    or token with blank lines would end it, and an image link after them would be fetched."""
    from components.prompt_figures import tokens_html
    from components.safe import h

    text = "a\n\n![x](http://example.com/x.png)\r\r[y](http://example.com)"
    page = f"<div style='white-space: pre-wrap'>{h(text)}</div>"
    assert tags(MarkdownIt("commonmark").render(page)) == {"div"}
    toks = [
        TokenInfo(pos=i, id=i, text=t, start=None, end=None)
        for i, t in enumerate(["\r\r", "![x](http://e.com/x.png)"])
    ]
    assert tags(MarkdownIt("commonmark").render(tokens_html(toks))) <= {"style", "div", "span"}


def test_the_default_data_dir_is_created_at_start_and_named_in_the_403(tmp_path):
    default = tmp_path / "user" / "interpscope" / "data"
    settings = EngineSettings(data_dirs=[default], cache_dir=tmp_path / "c")
    paths.ensure_default_data_dir(settings, default)
    assert default.is_dir()
    with pytest.raises(EngineError) as e:
        paths.confine("/etc/hostname", settings)
    assert str(default) in e.value.message and "data_dirs" in e.value.message
    other = tmp_path / "named-by-the-owner"  # only the default is created, never a named one
    paths.ensure_default_data_dir(
        EngineSettings(data_dirs=[other], cache_dir=tmp_path / "c"), default
    )
    assert not other.exists()


def test_the_engine_process_creates_its_default_data_dir(tmp_path, monkeypatch):
    """`python -m engine` creates <user data dir>/interpscope/data (here under a fake home)."""
    from engine import __main__ as engine_main

    default = tmp_path / "home" / "data"
    monkeypatch.setattr(paths, "DEFAULT_DATA_DIR", default)
    monkeypatch.setenv("INTERPSCOPE_DATA_DIRS", f'["{default}"]')
    monkeypatch.setattr(engine_main, "Engine", lambda s: None)
    monkeypatch.setattr(engine_main, "create_app", lambda e: None)
    monkeypatch.setattr(engine_main.uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr("sys.argv", ["engine", "--cache-dir", str(tmp_path / "c"), "--model", "m"])
    engine_main.main()
    assert default.is_dir()


@pytest.mark.parametrize("name", ["text", "csv", "json", "parquet", "Text", "notes", "notes/a.txt"])
def test_hub_names_the_datasets_package_reads_from_the_working_directory_are_refused(
    data, tmp_path, monkeypatch, name
):
    """``load_dataset("text")`` reads every .txt under the working directory, and a name that is
    a path there reads that path: both would send the engine's files back as examples."""
    settings, _ = data
    cwd = tmp_path / "cwd"
    (cwd / "notes").mkdir(parents=True)
    (cwd / "notes" / "a.txt").write_text("my password is hunter2\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EngineError) as e:
        check(settings, dataset=name)
    assert e.value.status == 403 and e.value.code == "path_not_allowed"
    assert "data_dirs" in e.value.message
    with pytest.raises(EngineError):  # reading checks again
        text_sources.read(ExamplesJobParams(sae="s", dataset=name), settings)


def test_engine_errors_a_page_leaves_unhandled_are_shown_escaped(monkeypatch):
    """Engine messages quote the request (a dataset name, a path): app.py's catch-all banner
    escapes them as ``shell.call`` does, so a quoted ``![x](http://...)`` is not fetched."""
    from components import shell
    from engine.client import EngineRequestError

    shown: list[str] = []
    monkeypatch.setattr(shell.st, "error", lambda body, **k: shown.append(body))
    with shell.engine_errors():
        raise EngineRequestError(
            404, "no_such_dataset", "No dataset '![x](http://example.com/x.png)'"
        )
    assert shown and tags(MarkdownIt().render(shown[0])) <= {"p"}


@pytest.mark.parametrize("label", ["x\nimport os; os.system('touch pwned')  #", "x\rINJECTED = 1",
                                   "x\u2028y\x00z"])  # fmt: skip
def test_a_steering_label_cannot_put_code_into_the_bundles_snippet(label):
    """A setup from a shared link or an imported file names its vectors: the label goes into a
    comment of the downloadable snippet.py, and must stay a comment."""
    import ast

    from components.steering_snippets import kl_bundle

    hook = "blocks.0.hook_resid_post"
    vec = {"kind": "contrastive", "positive": ["a"], "negative": ["b"], "hook": hook,
           "coefficient": 1.0, "label": label}  # fmt: skip
    events = [StreamEvent(type="start", vectors=[ResolvedVector(
        label=label, coefficient=1.0, hook=hook, norm=1.0, conditional=False)]),
        StreamEvent(type="done")]  # fmt: skip
    code = kl_bundle({"prompt": "x", "vectors": [vec]}, events).code
    tree = ast.parse(code)  # a NUL or a stray line would not even parse
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute)}  # fmt: skip
    assert "system" not in calls and "INJECTED" not in {
        t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
        if isinstance(t, ast.Name)
    }  # fmt: skip


@pytest.mark.parametrize("host", ["evil.example:8501", "127.0.0.1.evil.example:8501",
                                  "127.0.0.1:8501@evil.example", "127.0.0.1:8501", None])  # fmt: skip
def test_the_app_serves_only_its_own_host_names(monkeypatch, host):
    """DNS rebinding against the app: a page under another name that resolves here could drive
    the app, and the engine through it. The page is refused before it connects to anything."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from components import shell

    headers = {} if host is None else {"Host": host}
    monkeypatch.setattr(type(st.context), "headers", property(lambda self: headers))
    monkeypatch.setenv("INTERPSCOPE_ENGINE_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("INTERPSCOPE_NO_SPAWN", "1")
    shell.engine_link.clear()
    at = AppTest.from_file("../app.py", default_timeout=30).run()
    assert not at.exception
    refused = any("does not answer to the host name" in e.value for e in at.error)
    reached = any("engine is not reachable" in e.value for e in at.error)  # went on to connect
    own = host is None or host == "127.0.0.1:8501"
    assert (refused, reached) == ((False, True) if own else (True, False)), [
        e.value for e in at.error
    ]
    shell.engine_link.clear()


@pytest.mark.parametrize(
    "text", ["go to http://203.0.113.7/x", "HTTPS://a.b", "www.example.org", "me@example.org"]
)
def test_outside_text_is_never_an_autolink(text):
    """GFM turns a bare URL, www. name or e-mail address into a link after escapes are read
    (seen in the browser: a prompt's URL in a figure caption was a link): md and h put a word
    joiner in each, and the text reads the same."""
    from components.safe import WORD_JOINER, h, md

    for out in (md(text).replace("\\", ""), h(text)):
        assert not re.search(r"(?i)[a-z]://|www\.|@\w", out), out
        assert html.unescape(out).replace(WORD_JOINER, "") == text
