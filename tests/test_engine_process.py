"""The engine as a real process: start, answer, require tokens, die, restart."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.client import EngineClient, EngineRequestError, EngineUnavailable
from engine.launcher import free_port, spawn_engine, wait_until_healthy
from engine.settings import EngineSettings


@pytest.fixture
def spawn(tiny_model_dir, tmp_path):
    procs = []

    def start(port=None, token=None):
        port = port or free_port()
        proc = spawn_engine(
            port=port, model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"), token=token,
            log_path=tmp_path / "engine.log",
        )  # fmt: skip
        procs.append(proc)
        client = EngineClient(f"http://127.0.0.1:{port}", token=token)
        wait_until_healthy(client, proc=proc, timeout=90)
        return proc, client, port

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_process_serves_and_survives_kill_and_restart(spawn):
    proc, client, port = spawn()
    first_id = client.health().engine_id
    res = client.analyze("predictions", "When Mary and John", top_k=2)
    assert len(res.top[0]) == 2
    proc.kill()
    proc.wait()
    with pytest.raises(EngineUnavailable):
        client.analyze("predictions", "When Mary and John")
    _, client2, _ = spawn(port=port)
    assert client.health().engine_id != first_id  # the same client sees a new engine
    assert client2.analyze("predictions", "When Mary and John", top_k=2) == client.analyze(
        "predictions", "When Mary and John", top_k=2
    )


def test_token_is_required_when_set(spawn):
    _, client, port = spawn(token="s3cret")
    assert client.health().status == "ok"
    with pytest.raises(EngineRequestError) as e:
        EngineClient(f"http://127.0.0.1:{port}").health()
    assert e.value.status == 401 and e.value.code == "unauthorized"
    with pytest.raises(EngineRequestError):
        EngineClient(f"http://127.0.0.1:{port}", token="wrong").health()


def test_binding_beyond_loopback_needs_a_token():
    with pytest.raises(SystemExit, match="without a token"):
        EngineSettings(host="0.0.0.0").check_exposure()
    EngineSettings(host="0.0.0.0", token="t").check_exposure()
    out = subprocess.run(
        [sys.executable, "-m", "engine", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0 and "without a token" in out.stderr


def test_client_reports_engine_errors(spawn):
    _, client, _ = spawn()
    with pytest.raises(EngineRequestError) as e:
        client.analyze("predictions", "")
    assert e.value.code == "empty_prompt"
    with pytest.raises(EngineRequestError) as e:
        client.load_model("gpt-7-imaginary")
    assert "neither a local" in e.value.message
