"""The Streamlit app (AppTest, no browser): banner when the engine is unreachable."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.launcher import free_port


def test_unreachable_engine_shows_a_banner(monkeypatch):
    monkeypatch.setenv("INTERPSCOPE_ENGINE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("INTERPSCOPE_NO_SPAWN", "1")
    at = AppTest.from_file("../app.py", default_timeout=30).run()
    assert any("engine is not reachable" in e.value for e in at.error)
    assert at.button[0].label == "Retry"
