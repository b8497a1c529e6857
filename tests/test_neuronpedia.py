"""Neuronpedia labels through the ``neuronpedia`` package, against a local stand-in server.

The stand-in answers the endpoint the package calls (``GET {BASE}/feature/{model}/{source}/
{index}`` with the key in ``X-Api-Key``); offline (no key, or nothing listening) fails at
once with a clear 503 and never hangs.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import neuronpedia_labels as npl
from engine.api import create_app
from engine.errors import EngineError
from engine.launcher import free_port
from engine.service import Engine
from engine.settings import EngineSettings

KEY = "test-key"


class StandIn(BaseHTTPRequestHandler):
    calls: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        StandIn.calls.append(self.path)
        if self.headers.get("X-Api-Key") != KEY:
            self.send_response(401)
            self.end_headers()
            return
        _, api, feature, model, source, index = self.path.split("/")
        assert (api, feature) == ("api", "feature")
        body = {
            "modelId": model, "layer": source, "index": index, "frac_nonzero": 0.01,
            "activations": [],
            "explanations": [{"modelId": model, "source": source, "index": index,
                              "description": f"stand-in label {index}"}],
        }  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    srv = ThreadingHTTPServer(("127.0.0.1", free_port()), StandIn)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("INTERPSCOPE_NEURONPEDIA_URL", f"http://127.0.0.1:{srv.server_port}/api")
    StandIn.calls = []
    yield srv
    srv.shutdown()
    srv.server_close()


def test_label_from_stand_in_server_then_from_disk(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONPEDIA_API_KEY", KEY)
    got = npl.fetch_label("gpt2-small", "0-res-jb", 42, cache_dir=tmp_path)
    assert got.available and got.text == "stand-in label 42" and not got.cached
    assert got.url == "https://neuronpedia.org/gpt2-small/0-res-jb/42"
    assert StandIn.calls == ["/api/feature/gpt2-small/0-res-jb/42"]
    again = npl.fetch_label("gpt2-small", "0-res-jb", 42, cache_dir=tmp_path)
    assert again.cached and again.text == got.text and len(StandIn.calls) == 1


def test_wrong_key_is_a_clear_error(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONPEDIA_API_KEY", "wrong")
    with pytest.raises(EngineError) as e:
        npl.fetch_label("gpt2-small", "0-res-jb", 1, cache_dir=tmp_path)
    assert e.value.status == 503 and "Unauthorized" in e.value.message


def test_no_key_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("NEURONPEDIA_API_KEY", raising=False)
    with pytest.raises(EngineError) as e:
        npl.fetch_label("gpt2-small", "0-res-jb", 1, cache_dir=tmp_path)
    assert e.value.code == "neuronpedia_no_key" and "NEURONPEDIA_API_KEY" in e.value.message


def test_unreachable_host_fails_fast_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONPEDIA_API_KEY", KEY)
    port = free_port()  # nothing listens here
    monkeypatch.setenv("INTERPSCOPE_NEURONPEDIA_URL", f"http://127.0.0.1:{port}/api")
    with pytest.raises(EngineError) as e:
        npl.fetch_label("gpt2-small", "0-res-jb", 1, cache_dir=tmp_path)
    assert e.value.code == "neuronpedia_offline" and "cannot be reached" in e.value.message


def test_use_localhost_is_the_package_default_base(monkeypatch):
    monkeypatch.delenv("INTERPSCOPE_NEURONPEDIA_URL", raising=False)
    from neuronpedia.requests.base_request import NPRequest

    assert npl.base_url() == NPRequest.BASE_URL


ORGANISM = Path(__file__).resolve().parents[1] / "assets" / "organism"
SAE_DIR = ORGANISM / "saes" / "blocks.1.hook_resid_post"


@pytest.mark.skipif(not SAE_DIR.is_dir(), reason="organism SAEs not shipped")
def test_engine_route_for_an_sae_with_a_neuronpedia_id(server, tmp_path, monkeypatch):
    """A local SAELens directory whose cfg names a Neuronpedia id gets its label and link."""
    monkeypatch.setenv("NEURONPEDIA_API_KEY", KEY)
    sae_dir = tmp_path / "sae"
    shutil.copytree(SAE_DIR, sae_dir)
    cfg = json.loads((sae_dir / "cfg.json").read_text())
    cfg["metadata"]["neuronpedia_id"] = "organism/1-res-test"
    (sae_dir / "cfg.json").write_text(json.dumps(cfg))
    eng = Engine(
        EngineSettings(model=str(ORGANISM), cache_dir=tmp_path / "cache", data_dirs=[tmp_path])
    )
    try:
        with TestClient(create_app(eng)) as api:
            info = api.post("/saes", json={"path": str(sae_dir)}).json()
            assert info["neuronpedia_id"] == "organism/1-res-test"
            r = api.get("/saes/latent/neuronpedia", params={"sae": info["id"], "index": 7})
            assert r.status_code == 200 and r.json()["text"] == "stand-in label 7"
            assert StandIn.calls == ["/api/feature/organism/1-res-test/7"]
            body = {"prompt": "The capital of France is", "params": {"sae": info["id"], "index": 7}}
            detail = api.post("/analysis/latent_detail", json=body).json()
            assert detail["neuronpedia"]["url"] == "https://neuronpedia.org/organism/1-res-test/7"
            r = api.get(
                "/saes/latent/neuronpedia", params={"sae": "blocks.1.hook_resid_post", "index": 7}
            )
            assert r.status_code == 404 and r.json()["error"]["code"] == "no_neuronpedia_page"
    finally:
        eng.close()
