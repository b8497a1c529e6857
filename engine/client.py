"""A typed HTTP client for the engine (used by the app, tests and benchmarks).

Connection failures raise ``EngineUnavailable``; error answers raise ``EngineRequestError``
with the engine's code and message (``JobLost`` for a job the engine does not know).

A request never times out while the engine is merely busy (engine/patience.py): it waits as
long as ``/health`` answers, telling the calling thread's ``on_busy`` callback what the engine
is busy with, and gives up only when the engine stops answering.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from engine.graphs.schemas import GraphCost, GraphInfo
from engine.patience import EngineRequestError, EngineUnavailable, JobLost, Patience
from engine.schemas.analyses import (
    AnalysisRequest,
    AttentionLayerResult,
    AttentionResult,
    DLAResult,
    HeadScoresResult,
    LensTargetsResult,
    LogitLensResult,
    PredictionsResult,
)
from engine.schemas.common import TokenizeResponse
from engine.schemas.diff import DiffComponentsResult, DiffResidResult, DiffTokensResult
from engine.schemas.diff_latents import AdiffLensResult, DiffLatentsResult, LatentDiffSetResult
from engine.schemas.directions import Direction, DirectionInfo, ExportResult
from engine.schemas.jobs import JobInfo, JobResult, JobStatus
from engine.schemas.model import Capabilities, Health, LoadEstimate, ModelInfo, SlotInfo
from engine.schemas.probes import StoredProbeSweep
from engine.schemas.saes import (
    LatentDetailResult,
    LatentSearchResult,
    NeuronpediaLabel,
    SaeInfo,
    SaeLatentsResult,
)
from engine.schemas.steering import StreamEvent

R = TypeVar("R", bound=BaseModel)
__all__ = ["EngineClient", "EngineRequestError", "EngineUnavailable", "JobLost", "RESULTS"]

# each analysis's result model, by its route's name (torch-free, unlike the registry whose
# ``Analysis.result`` they are: tests/test_registry.py keeps the two the same)
RESULTS: dict[str, type[BaseModel]] = {
    "predictions": PredictionsResult,
    "attention_pattern": AttentionResult,
    "attention_layer": AttentionLayerResult,
    "head_scores": HeadScoresResult,
    "logit_lens": LogitLensResult,
    "logit_lens_targets": LensTargetsResult,
    "dla": DLAResult,
    "sae_latents": SaeLatentsResult,
    "latent_detail": LatentDetailResult,
    "latent_search": LatentSearchResult,
    # pair analyses (engine/pairs.py)
    "diff_tokens": DiffTokensResult,
    "diff_resid": DiffResidResult,
    "diff_components": DiffComponentsResult,
    "diff_latents": DiffLatentsResult,
}


def _raise_for(r: httpx.Response) -> None:
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
        except Exception:
            err = {"code": "http_error", "message": r.text[:500]}
        raise EngineRequestError(r.status_code, err["code"], err["message"], err.get("detail"))


class EngineClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0):
        """`timeout`: for requests given one explicitly, and connecting; the others wait while
        the engine answers ``/health`` (``Patience``)."""
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.patience = Patience(self)
        self.on_busy = self.patience.on_busy
        self._origins: dict[str, str] = {}  # job id -> the engine id that started it

    def send(self, method: str, path: str, json: Any = None, timeout: Any = None) -> Any:
        """One request, in this thread; `timeout` as httpx takes it (None: the client's)."""
        kwargs: dict[str, Any] = {"json": json}
        if timeout is not None:
            kwargs["timeout"] = timeout
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as e:
            raise EngineUnavailable(
                f"The engine at {self.url} is not reachable ({type(e).__name__}).", refused=True
            ) from e
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            raise EngineUnavailable(
                f"The engine at {self.url} stopped answering ({type(e).__name__})."
            ) from e
        except httpx.TimeoutException as e:
            raise EngineUnavailable(f"The engine at {self.url} did not answer in time.") from e
        _raise_for(r)
        return r.json()

    def request(
        self, method: str, path: str, json: Any = None, timeout: float | None = None
    ) -> Any:
        """With `timeout`: one try, at most that long. Without: as long as the engine is alive."""
        if timeout is not None:
            return self.send(method, path, json, timeout)
        return self.patience.wait(lambda: self.send(method, path, json, self.patience.forever))

    # --- endpoints ---------------------------------------------------------------
    def health(self, timeout: float | None = None) -> Health:
        return Health.model_validate(self.request("GET", "/health", timeout=timeout))

    def capabilities(self, model: str = "a") -> Capabilities:
        """Of the model in slot `model`."""
        path = "/capabilities" + ("" if model == "a" else f"?model={quote(model)}")
        return Capabilities.model_validate(self.request("GET", path))

    def tokenize(self, prompt: str, prepend_bos: bool = True, model: str = "a") -> TokenizeResponse:
        body = {"prompt": prompt, "prepend_bos": prepend_bos, "model": model}
        return TokenizeResponse.model_validate(self.request("POST", "/tokenize", body))

    def analyze(
        self,
        name: str,
        prompt: str,
        prepend_bos: bool = True,
        *,
        model: str = "a",
        model_b: str | None = None,
        prompt_b: str | None = None,
        **params: Any,
    ) -> Any:
        """The analysis's result model (``RESULTS[name]``: e.g. ``PredictionsResult``); the
        JSON as it came for a name ``RESULTS`` lacks (an engine newer than this client).
        `model`: the slot it runs on; a pair analysis (engine/pairs.py) also takes one of
        `model_b` (another slot) or `prompt_b` (another prompt)."""
        body: dict[str, Any] = {"prompt": prompt, "prepend_bos": prepend_bos, "params": params}
        body |= {"model": model, "model_b": model_b, "prompt_b": prompt_b}
        got = self.request("POST", f"/analysis/{name}", body)
        return RESULTS[name].model_validate(got) if name in RESULTS else got

    def analysis(self, name: str, req: AnalysisRequest, result: type[R]) -> R:
        """`name` on `req` (it names the slot, and side B of a pair), as `result`."""
        got = self.request("POST", f"/analysis/{name}", req.model_dump(mode="json"))
        return result.model_validate(got)

    # --- jobs (typed: engine/schemas/jobs.py) ---------------------------------------------
    def start_job(self, kind: str, params: dict) -> JobInfo:
        engine_id = self.health(timeout=10.0).engine_id
        job = JobInfo.model_validate(self.request("POST", f"/jobs/{kind}", params))
        self._origins[job.id] = engine_id
        return job

    def job(self, job_id: str) -> JobResult:
        """The job's state now; ``JobLost`` when the engine does not know the job."""
        try:
            return JobResult.model_validate(self.request("GET", f"/jobs/{job_id}"))
        except EngineRequestError as e:
            raise self._lost(job_id, e) from e

    def _lost(self, job_id: str, e: EngineRequestError) -> EngineRequestError:
        if e.code != "unknown_job":
            return e
        origin = self._origins.get(job_id)
        expired = origin is not None and origin == self.health(timeout=10.0).engine_id
        return JobLost(job_id, expired=expired)

    def cancel_job(self, job_id: str) -> JobInfo:
        try:
            return JobInfo.model_validate(self.request("POST", f"/jobs/{job_id}/cancel"))
        except EngineRequestError as e:
            raise self._lost(job_id, e) from e

    def wait_job(self, job_id: str, timeout: float = 600.0) -> JobResult:
        """The job's state once it has finished, or after `timeout` seconds with it still
        running: the one way to wait for a job. The engine answers ``GET
        /jobs/{id}/wait`` when the job finishes (no polling, no thread held on the engine),
        asked at most a minute at a time; ``JobLost`` when the engine does not know the job."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(deadline - time.monotonic(), 0.01)
            wait = min(left, 60.0)
            try:
                state = JobResult.model_validate(
                    self.request(
                        "GET", f"/jobs/{job_id}/wait?timeout_s={wait:.2f}", timeout=wait + 10
                    )
                )
            except EngineRequestError as e:
                raise self._lost(job_id, e) from e
            if state.job.status.finished or left <= wait:
                return state

    def estimate_model(
        self, name: str, dtype: str = "float32", max_context: int | None = None, slot: str = "a"
    ) -> LoadEstimate:
        """What loading `name` into `slot` would take, the other slots' models counted."""
        body = {"name": name, "dtype": dtype, "max_context": max_context, "slot": slot}
        return LoadEstimate.model_validate(self.request("POST", "/models/estimate", body))

    def load_model(
        self,
        name: str,
        dtype: str = "float32",
        device: str | None = None,
        max_context: int | None = None,
        slot: str = "a",
    ) -> ModelInfo:
        """Load `name` into `slot` ("a" replaces the primary model; another keeps it)."""
        params = {"name": name, "dtype": dtype, "device": device, "max_context": max_context}
        params["slot"] = slot
        job = self.start_job("load_model", params)
        state = self.wait_job(job.id)
        if state.job.status != JobStatus.done:
            raise EngineRequestError(422, "load_failed", state.job.error or state.job.message)
        return ModelInfo.model_validate(state.result)

    def models(self) -> list[SlotInfo]:
        """Every loaded model and its slot."""
        return [SlotInfo.model_validate(m) for m in self.request("GET", "/models")]

    def unload(self, slot: str) -> list[SlotInfo]:
        """Unload the model of `slot` (not "a"); the models still loaded."""
        return [
            SlotInfo.model_validate(m) for m in self.request("DELETE", f"/models/{quote(slot)}")
        ]

    # --- attribution graphs (engine/api_graphs.py) --------------------------------------
    def graph_cost(self, prompt: str, **params: Any) -> GraphCost:
        return GraphCost.model_validate(
            self.request("POST", "/graphs/cost", {"prompt": prompt, **params})
        )

    def graphs(self, all_models: bool = False) -> list[GraphInfo]:
        got = self.request("GET", f"/graphs?all_models={str(all_models).lower()}")
        return [GraphInfo.model_validate(g) for g in got]

    def graph(self, slug: str) -> dict:
        """A saved graph: circuit-tracer's graph JSON, as its viewer and Neuronpedia read it."""
        return self.request("GET", f"/graphs/{slug}")

    def graph_info(self, slug: str) -> GraphInfo:
        return GraphInfo.model_validate(self.request("GET", f"/graphs/{slug}/info"))

    def set_graph_qparams(
        self,
        slug: str,
        pinned: list[str],
        supernodes: list[list[str]],
        clicked: str = "",
        version: int | None = None,
    ) -> dict:
        """The new qParams and their ``version``; with `version`, a 409 ``stale_qparams``
        (its detail: the saved qParams and version) when someone saved since."""
        body = {"pinnedIds": pinned, "supernodes": supernodes, "clickedId": clicked}
        if version is not None:
            body["version"] = version
        return self.request("PUT", f"/graphs/{slug}/qparams", body)

    def delete_graph(self, slug: str) -> dict:
        return self.request("DELETE", f"/graphs/{slug}")

    def component_graph(self, prompt: str, corrupted: str, target: Any, **params: Any) -> GraphInfo:
        body = {"prompt": prompt, "corrupted": corrupted, "target": target, **params}
        return GraphInfo.model_validate(
            self.request("POST", "/graphs/components", body, timeout=300)
        )

    # --- SAEs and steering (engine/api_saes.py, engine/api_steering.py) -----------------
    def saes(self) -> list[SaeInfo]:
        return [SaeInfo.model_validate(s) for s in self.request("GET", "/saes")]

    def attach_sae(
        self, release: str | None = None, sae_id: str | None = None, path: str | None = None
    ) -> SaeInfo:
        body = {"release": release, "sae_id": sae_id, "path": path}
        return SaeInfo.model_validate(self.request("POST", "/saes", body, timeout=600.0))

    def neuronpedia_label(self, sae: str, index: int) -> NeuronpediaLabel:
        path = f"/saes/latent/neuronpedia?sae={quote(sae)}&index={index}"
        return NeuronpediaLabel.model_validate(self.request("GET", path))

    def steer_stream(self, body: dict) -> Iterator[StreamEvent]:
        """The events of a steered generation as they arrive (see engine.steering_stream),
        waiting while the engine is busy; closing the iterator ends the request."""

        def lines(stop) -> Iterator[StreamEvent]:
            try:
                with self._http.stream(
                    "POST", "/steering/generate", json=body, timeout=self.patience.forever
                ) as r:
                    if r.status_code >= 400:
                        r.read()
                        _raise_for(r)
                    for line in r.iter_lines():
                        if stop.is_set():
                            return
                        if line:
                            yield StreamEvent.model_validate_json(line)
            except httpx.ConnectError as e:
                raise EngineUnavailable(f"The engine at {self.url} is not reachable.") from e
            except httpx.TransportError as e:
                raise EngineUnavailable(
                    f"The engine at {self.url} stopped answering ({type(e).__name__})."
                ) from e

        return self.patience.stream(lines)

    # --- directions (engine/api_directions.py) -----------------------------------------
    def directions(self, all_models: bool = False) -> list[DirectionInfo]:
        """The saved directions of the loaded model, or every one."""
        got = self.request("GET", f"/directions?all_models={str(all_models).lower()}")
        return [DirectionInfo.model_validate(d) for d in got]

    def save_direction(self, d: Direction | dict) -> DirectionInfo:
        """Save a Direction (or a dict of its fields); its DirectionInfo."""
        body = d.model_dump(mode="json") if isinstance(d, Direction) else d
        return DirectionInfo.model_validate(self.request("POST", "/directions", body))

    def direction(self, name: str) -> Direction:
        return Direction.model_validate(self.request("GET", f"/directions/{quote(name, safe='')}"))

    def delete_direction(self, name: str) -> dict:
        """``{"deleted": name}``."""
        return self.request("DELETE", f"/directions/{quote(name, safe='')}")

    def export_orthogonalised(
        self, direction: str, out: str | None = None, **kw: Any
    ) -> ExportResult:
        """Write the model with `direction` projected out of its weights."""
        body = {"direction": direction, "out": out, **kw}
        return ExportResult.model_validate(
            self.request("POST", "/directions/export", body, timeout=600.0)
        )

    # --- probe sweeps (engine/api_probes.py; the sweep is the probe_sweep job) ----------
    def probe_sweep(self, sweep: str) -> StoredProbeSweep:
        """A finished probe sweep's result (without its vectors) and its parameters."""
        return StoredProbeSweep.model_validate(
            self.request("GET", f"/probes/{quote(sweep, safe='')}")
        )

    def save_probe_direction(
        self, sweep: str, hook: str, method: str = "logistic_probe", position: int | None = None,
        name: str | None = None,
    ) -> DirectionInfo:  # fmt: skip
        """Save a sweep's fitted vector at `hook` as a named direction."""
        body = {"hook": hook, "method": method, "position": position, "name": name}
        got = self.request("POST", f"/probes/{quote(sweep, safe='')}/directions", body)
        return DirectionInfo.model_validate(got)

    def cache_stats(self) -> dict:
        return self.request("GET", "/cache/stats")

    def clear_cache(self) -> dict:
        return self.request("POST", "/cache/clear")

    # --- model diffing: latent diffs and the activation-difference lens (issue 14) ---------
    def diff_latents(
        self, prompt: str, sae: str, *, model: str = "a", model_b: str | None = None,
        prompt_b: str | None = None, prepend_bos: bool = True, **params: Any,
    ) -> DiffLatentsResult:  # fmt: skip
        """One SAE of slot `model` on both sides of a pair (`model_b` or `prompt_b`)."""
        req = AnalysisRequest(prompt=prompt, prepend_bos=prepend_bos, model=model,
                              model_b=model_b, prompt_b=prompt_b, params={"sae": sae, **params})  # fmt: skip
        return self.analysis("diff_latents", req, DiffLatentsResult)

    def _job_result(self, kind: str, params: dict, result: type[R], timeout: float) -> R:
        job = self.start_job(kind, params)
        state = self.wait_job(job.id, timeout=timeout)
        if state.job.status != JobStatus.done:
            raise EngineRequestError(422, f"{kind}_failed", state.job.error or state.job.message)
        return result.model_validate(state.result)

    def adiff_lens(self, timeout: float = 600.0, **params: Any) -> AdiffLensResult:
        """The ``adiff_lens`` job (params: engine/schemas/diff_latents.AdiffLensParams), waited
        for; ``start_job("adiff_lens", params)`` to follow its progress instead."""
        return self._job_result("adiff_lens", params, AdiffLensResult, timeout)

    def latent_diff_set(
        self, sae: str, timeout: float = 600.0, **params: Any
    ) -> LatentDiffSetResult:
        """The ``latent_diff_set`` job (params: LatentDiffSetParams), waited for."""
        return self._job_result("latent_diff_set", {"sae": sae, **params}, LatentDiffSetResult,
                                timeout)  # fmt: skip

    def close(self) -> None:
        self.patience.close()
        self._http.close()
