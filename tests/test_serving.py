"""serve(model): an engine over a model already in memory, reached over HTTP like any other."""

from __future__ import annotations

import torch
from transformer_lens import HookedTransformer

from engine import serve
from engine.client import EngineClient
from engine.launcher import free_port
from engine.loading import load_model
from engine.serving import tensor_hash

PROMPT = "When Mary and John went to the store, John gave a drink to"


def _notebook_model(model_dir) -> HookedTransformer:
    """What a notebook holds: a HookedTransformer, here "fine-tuned" by a nudge to one weight."""
    model = load_model(str(model_dir)).model
    with torch.no_grad():
        model.blocks[0].attn.W_Q[0, 0, 0] += 0.5
    return model


def test_serve_answers_the_api_on_the_model_itself(tiny_model_dir, tmp_path):
    model = _notebook_model(tiny_model_dir)
    handle = serve(model, port=free_port(), name="my-finetune", cache_dir=tmp_path)
    try:
        client = EngineClient(handle.url)
        caps = client.capabilities()
        assert caps.model.name == "my-finetune" and caps.model.source == "memory"
        first = caps.model.fingerprint
        assert first.startswith("my-finetune@") and first.endswith(":float32")
        res = client.analyze("predictions", PROMPT, top_k=1)
        tokens = torch.tensor([[t.id for t in res.tokens]])
        with torch.inference_mode():
            expected = model(tokens)[0].argmax(-1).tolist()
        assert [c[0].id for c in res.top] == expected

        with torch.no_grad():  # training goes on in the notebook
            model.unembed.W_U.mul_(-1.0)
        handle.refresh()
        second = client.capabilities().model.fingerprint
        assert second != first
        flipped = client.analyze("predictions", PROMPT, top_k=1)
        with torch.inference_mode():
            expected = model(tokens)[0].argmax(-1).tolist()
        assert [c[0].id for c in flipped.top] == expected != [c[0].id for c in res.top]
    finally:
        handle.stop()
    assert not handle.thread.is_alive()


def test_fingerprint_is_of_the_weights(tiny_model_dir):
    a, b = load_model(str(tiny_model_dir)).model, load_model(str(tiny_model_dir)).model
    assert tensor_hash(a) == tensor_hash(b)
    with torch.no_grad():
        b.blocks[1].mlp.W_in[3, 4] += 1e-3
    assert tensor_hash(a) != tensor_hash(b)


def test_app_attaches_to_a_served_model(tiny_model_dir, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    handle = serve(_notebook_model(tiny_model_dir), port=free_port(), name="my-finetune",
                   cache_dir=tmp_path, data_dirs=[tiny_model_dir])  # fmt: skip
    try:
        monkeypatch.setenv("INTERPSCOPE_ENGINE_URL", handle.url)
        monkeypatch.setenv("INTERPSCOPE_NO_SPAWN", "1")
        st.cache_resource.clear()  # the app's engine link, cached by an earlier AppTest
        at = AppTest.from_file("../app.py", default_timeout=60).run()
        assert not at.exception and not at.error
        assert any("my-finetune" in c.value.replace("\\", "") for c in at.sidebar.caption)
        # the sidebar's estimate before loading another model
        box = next(t for t in at.sidebar.text_input if "local directory" in t.label)
        box.input(str(tiny_model_dir)).run()
        assert not at.exception
        caps = [c.value for c in at.sidebar.caption] + [w.value for w in at.sidebar.warning]
        assert any("needs about" in c and "GiB free" in c for c in caps), caps
    finally:
        handle.stop()
