"""Jobs under load: interactive work interleaves with long jobs, a busy engine says so and keeps
answering, waiters hold no threads, and a job lost with its engine is reported as lost.

Ground truth: the graph made while analyses interleave equals circuit-tracer's ``attribute``
called directly; every answer given during a job is byte-equal to the same request answered
by an idle engine.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
import uvicorn

from components.connection import EngineLink
from engine.api import create_app
from engine.client import EngineClient, EngineUnavailable, JobLost
from engine.launcher import free_port, spawn_engine, wait_until_healthy
from engine.model_thread import ModelThread
from engine.settings import DEFAULT_MODEL_DIR

ORGANISM = (DEFAULT_MODEL_DIR / "transcoders" / "config.yaml").is_file()
needs_organism = pytest.mark.skipif(not ORGANISM, reason="organism not shipped")
LONG = "When Mary and John went to the store, John gave a drink to Mary. Once upon a time"
PROMPTS = ["The capital of France is", "Once upon a time there was", "Mary gave John a"]


class Served:
    """An engine served over real HTTP (uvicorn on a thread), as `python -m engine` does."""

    def __init__(self, engine):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(create_app(engine), host="127.0.0.1", port=self.port,
                             log_level="warning")  # fmt: skip
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until_healthy(EngineClient(self.url), timeout=30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served_tiny(engine):
    s = Served(engine)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def served_org(org):
    s = Served(org)
    yield s
    s.stop()


def blocking_job(engine, *, on_model_thread: bool = False):
    """A job that runs until its event is set (on the model thread if asked: one long step)."""
    release, started = threading.Event(), threading.Event()

    def fn(ctx):
        started.set()
        if on_model_thread:
            engine.compute(release.wait, 60)
        else:
            release.wait(60)
        return {"ok": True}

    job = engine.jobs.submit("blocking", fn)
    assert started.wait(30)
    return job, release


# --- the model thread's two queues ---------------------------------------------------------
def test_interactive_work_goes_before_queued_job_steps():
    mt = ModelThread()
    try:
        gate, order = threading.Event(), []
        mt.submit(gate.wait, 10)  # occupy the thread while the queues fill
        with mt.background():
            steps = [mt.submit(order.append, f"step{i}") for i in range(3)]
        asked = mt.submit(order.append, "interactive")
        gate.set()
        for f in [*steps, asked]:
            f.result(10)
        assert order == ["interactive", "step0", "step1", "step2"]
    finally:
        mt.shutdown()


def test_a_long_step_serves_interactive_work_in_its_pauses():
    mt = ModelThread()
    try:
        done, seen = threading.Event(), []

        def long_step():
            while not done.is_set():  # e.g. circuit-tracer's batches, a pause between each
                time.sleep(0.01)
                mt.serve_waiting()
            return "step over"

        step = mt.submit(long_step)
        answer = mt.submit(lambda: seen.append(threading.current_thread().name) or 42)
        assert answer.result(10) == 42 and not step.done()  # answered inside the step
        done.set()
        assert step.result(10) == "step over" and seen[0].startswith("model")
        assert mt.serve_waiting() == 0  # off the model thread: nothing
    finally:
        mt.shutdown()


# --- a graph job interleaved with analyses ---------------------------------------------------
@needs_organism
def test_mixed_clients_during_a_graph_job_answer_first_and_correctly(org, served_org):
    """Four clients send mixed requests while a graph job runs: each answers while the job is
    still in its backward passes (they run from 10 % to 90 %), byte-equal to the idle engine's answer, and the graph equals circuit-tracer's own."""
    from circuit_tracer import attribute

    from engine.graphs.replacement import build_replacement_model, load_transcoder_set

    requests = [(name, p) for p in PROMPTS for name in ("predictions", "logit_lens", "dla")]

    def ask(client, name, prompt):
        body = {"prompt": prompt, "prepend_bos": True, "params": {}}
        return client._http.post(f"/analysis/{name}", json=body, timeout=300).content

    idle = EngineClient(served_org.url)
    alone = {(n, p): ask(idle, n, p) for n, p in requests}
    org.cache.clear()
    org.runs.clear()
    params = {"prompt": LONG, "max_feature_nodes": 100_000, "max_n_logits": 1, "batch_size": 2}
    job = org.start_job("attribution_graph", params)
    while job.progress < 0.15 and not job.status.finished:
        time.sleep(0.01)
    health = idle.health()
    assert health.busy and health.job.kind == "attribution_graph"
    assert 0.1 <= health.job.progress < 1

    def client_run(i: int) -> list[tuple[tuple, bytes, bool]]:
        c = EngineClient(served_org.url)
        mine = requests[i::4]
        return [((n, p), ask(c, n, p), job.progress) for n, p in mine]

    with ThreadPoolExecutor(4) as pool:
        answers = [a for part in pool.map(client_run, range(4)) for a in part]
    assert len(answers) == len(requests)
    for key, body, progress in answers:
        assert body == alone[key], key
        assert progress < 0.85, f"{key} waited for the graph job's backward passes"
    assert org.model_thread.interleaved >= 1
    while not job.status.finished:
        time.sleep(0.05)
    assert job.status == "done", job.error
    lm = org.require_model()
    from circuit_tracer.graph import Graph

    g = Graph.from_pt(str(org.graphs.store.pt_path(job.result["slug"])))
    rm = build_replacement_model(lm.model, load_transcoder_set(DEFAULT_MODEL_DIR / "transcoders"))
    direct = attribute(torch.tensor(job.result["token_ids"]), rm, max_n_logits=1, batch_size=2)
    assert torch.equal(direct.active_features, g.active_features)
    assert torch.allclose(direct.adjacency_matrix, g.adjacency_matrix, atol=1e-5)


@needs_organism
def test_an_analysis_does_not_wait_for_a_latent_examples_job(org, tmp_path, monkeypatch):
    monkeypatch.setattr(org.settings, "data_dirs", [tmp_path])  # readable (engine/paths.py)
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(f"{PROMPTS[i % 3]} {i} and then the dog ran" for i in range(600)))
    job = org.start_job("latent_examples", {"sae": "blocks.1.hook_resid_post",
                                            "path": str(path), "max_texts": 600})  # fmt: skip
    while job.progress < 0.05 and not job.status.finished:
        time.sleep(0.01)
    assert org.health().job.kind == "latent_examples"
    from engine.schemas.analyses import AnalysisRequest

    org.analyze("predictions", AnalysisRequest(prompt="A fresh prompt, never cached before"))
    assert not job.status.finished and org.health().busy
    org.jobs.cancel(job.id)
    while not job.status.finished:
        time.sleep(0.02)
    assert job.status == "cancelled"


# --- waiting ------------------------------------------------------------------------------
def test_fifty_waiters_hold_no_threads_and_health_answers(engine, served_tiny):
    job, release = blocking_job(engine)
    before = threading.active_count()

    async def waiters(path: str) -> list[dict]:
        async with httpx.AsyncClient(base_url=served_tiny.url, timeout=60) as c:
            rs = await asyncio.gather(*(c.get(path) for _ in range(50)))
            return [r.json() for r in rs]

    out: list = []
    runner = threading.Thread(
        target=lambda: out.extend(asyncio.run(waiters(f"/jobs/{job.id}/wait?timeout_s=30")))
    )
    runner.start()
    deadline = time.monotonic() + 20
    while len(job._callbacks) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(job._callbacks) == 50  # all fifty are waiting on the engine
    t0 = time.perf_counter()
    health = httpx.get(f"{served_tiny.url}/health", timeout=5).json()
    assert time.perf_counter() - t0 < 2.0 and health["busy"]  # functional bound, generous
    assert threading.active_count() - before <= 5  # no thread per waiter (was one each)
    release.set()
    runner.join(30)
    assert len(out) == 50 and all(s["job"]["status"] == "done" for s in out)
    assert all(s["result"] == {"ok": True} for s in out) and not job._callbacks
    old = httpx.get(f"{served_tiny.url}/graphs/jobs/{job.id}/wait", timeout=10)  # the alias
    assert old.json()["job"]["status"] == "done"
    assert httpx.get(f"{served_tiny.url}/jobs/nope/wait").status_code == 404


def test_wait_answers_at_its_timeout_while_the_job_runs(engine, served_tiny):
    job, release = blocking_job(engine)
    try:
        t0 = time.monotonic()
        r = httpx.get(f"{served_tiny.url}/jobs/{job.id}/wait?timeout_s=0.5", timeout=10).json()
        assert r["job"]["status"] == "running" and r["result"] is None
        assert 0.4 < time.monotonic() - t0 < 5
        assert not job._callbacks  # the waiter that left is forgotten
    finally:
        release.set()


# --- a busy engine is not a stopped one ----------------------------------------------------
def test_client_waits_while_the_engine_is_busy_and_says_with_what(engine, served_tiny):
    """One long step holds the model thread longer than the client's timeout: the analysis
    still answers, and the caller learns what the engine was busy with meanwhile."""
    client = EngineClient(served_tiny.url, timeout=1.0)
    client.patience.check_s = 0.2
    job, release = blocking_job(engine, on_model_thread=True)
    threading.Timer(2.5, release.set).start()
    seen: list = []
    with client.on_busy(seen.append):
        res = client.analyze("predictions", "A prompt the cache has not seen", top_k=2)
    assert len(res.top[0]) == 2
    busy = [h for h in seen if h is not None]
    assert busy and busy[0].job.kind == "blocking" and seen[-1] is None


def test_link_never_starts_a_second_engine_where_one_answers_slowly(monkeypatch):
    """Something listens on the port but does not answer (a busy engine): wait, never spawn."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # connections complete in the backlog; nothing ever answers
        port = listener.getsockname()[1]
        monkeypatch.delenv("INTERPSCOPE_NO_SPAWN", raising=False)
        link = EngineLink(url=f"http://127.0.0.1:{port}")
        link.slow_wait_s = 1.0
        spawned = []
        monkeypatch.setattr(link, "_spawn", lambda *a, **k: spawned.append(1))
        status = link.ensure()
        assert not status.ok and "running but has not answered" in status.message
        assert spawned == []


# --- a job lost with its engine ------------------------------------------------------------
def test_a_job_lost_with_its_engine_is_reported_lost(tiny_model_dir, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start():
        proc = spawn_engine(port=port, model=str(tiny_model_dir), cache_dir=str(tmp_path / "c"),
                            log_path=tmp_path / "engine.log")  # fmt: skip
        wait_until_healthy(EngineClient(url), proc=proc, timeout=90)
        return proc

    first = start()
    second = None
    try:
        client = EngineClient(url)
        job = client.start_job("batch_loss", {"texts": ["Once upon a time"] * 5000})
        first.kill()
        first.wait()
        with pytest.raises(EngineUnavailable):
            client.job(job.id)
        second = start()
        with pytest.raises(JobLost) as lost:
            client.job(job.id)
        assert "lost when the engine stopped" in lost.value.message and not lost.value.expired
        with pytest.raises(JobLost):
            client.wait_job(job.id, timeout=5)
        again = client.start_job("batch_loss", {"texts": ["Once upon a time"]})  # a rerun works
        assert client.wait_job(again.id, timeout=60).job.status == "done"
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_graph_page_reports_a_lost_job_with_a_rerun_button(served_tiny, monkeypatch):
    """The page follows a job the engine does not know (its engine stopped): no traceback,
    the loss said in words, a button that runs it again."""
    from streamlit.testing.v1 import AppTest

    from components import shell

    shell.engine_link.clear()  # the link other AppTests in this process cached (another URL)
    monkeypatch.setenv("INTERPSCOPE_ENGINE_URL", served_tiny.url)
    monkeypatch.setenv("INTERPSCOPE_NO_SPAWN", "1")
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.switch_page("views/graph.py")
    params = {"prompt": "Once upon a time", "max_feature_nodes": 8}
    at.session_state["graph_job"] = {"id": "gone", "kind": "attribution_graph", "params": params}
    at.run()
    assert not at.exception
    assert any("graph job was lost when the engine stopped" in w.value for w in at.warning)
    assert "graph_job" not in at.session_state
    rerun = next(b for b in at.button if b.label == "Run it again")
    rerun.click().run()
    assert not at.exception  # run again: refused at submit (this model has no transcoders)
    assert any("transcoders" in e.value for e in at.error)
    assert not any("was lost" in w.value for w in at.warning)
    shell.engine_link.clear()


@needs_organism
def test_latents_page_reports_a_lost_examples_job(served_org, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from components import shell

    shell.engine_link.clear()
    monkeypatch.setenv("INTERPSCOPE_ENGINE_URL", served_org.url)
    monkeypatch.setenv("INTERPSCOPE_NO_SPAWN", "1")
    at = AppTest.from_file("../app.py", default_timeout=120)
    at.switch_page("views/latents.py")
    params = {"sae": "blocks.1.hook_resid_post", "path": "/nowhere.txt", "max_texts": 5}
    at.session_state["examples_job"] = {"id": "gone", "kind": "latent_examples", "params": params}
    at.run()
    assert not at.exception
    assert any("examples job was lost when the engine stopped" in w.value for w in at.warning)
    assert any(b.label == "Run it again" for b in at.button)
    shell.engine_link.clear()


def test_a_page_says_the_engine_is_busy_while_a_long_job_holds_it(engine, served_tiny, monkeypatch):
    """The Prompt page's analysis waits behind one long step: the page shows "The engine is busy
    with <job>" while it waits (then clears it), and draws its result once the step ends."""
    import uuid

    from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
    from streamlit.testing.v1 import AppTest

    from components import shell

    shown: list[str] = []  # every alert the page sent, including ones replaced later in the run
    enqueue = ForwardMsgQueue.enqueue

    def spy(self, msg):
        if (
            msg.WhichOneof("type") == "delta"
            and msg.delta.new_element.WhichOneof("type") == "alert"
        ):
            shown.append(msg.delta.new_element.alert.body)
        return enqueue(self, msg)

    monkeypatch.setattr(ForwardMsgQueue, "enqueue", spy)
    shell.engine_link.clear()
    monkeypatch.setenv("INTERPSCOPE_ENGINE_URL", served_tiny.url)
    monkeypatch.setenv("INTERPSCOPE_NO_SPAWN", "1")
    at = AppTest.from_file("../app.py", default_timeout=90)
    at.switch_page("views/prompt.py")
    at.query_params["prompt"] = f"A prompt no cache has seen {uuid.uuid4().hex}"
    job, release = blocking_job(engine, on_model_thread=True)
    timer = threading.Timer(4.0, release.set)
    timer.start()
    try:
        at.run()
    finally:
        release.set()
        timer.cancel()
    assert not at.exception
    assert any("The engine is busy with blocking" in s for s in shown), shown
    assert not any("busy" in i.value for i in at.info)  # cleared once the answer came
    assert at.title[0].value == "Prompt" and not at.error
    shell.engine_link.clear()
