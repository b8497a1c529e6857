"""The engine's HTTP API (FastAPI): typed routes over ``Engine``, uniform JSON errors.

Every error is ``{"error": {"code", "message", "detail"}}`` with a 4xx status for bad
input; an unexpected failure answers 500 and the engine keeps serving.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import api_directions, api_jobs, api_models, api_saes, api_steering
from engine.api_graphs import graph_router
from engine.errors import EngineError, envelope
from engine.schemas.analyses import AnalysisRequest
from engine.schemas.common import (
    PRIMARY,
    SLOT_PATTERN,
    ErrorBody,
    PromptRequest,
    TokenizeResponse,
)
from engine.schemas.jobs import JobInfo, JobResult
from engine.schemas.model import Capabilities, Health, LoadEstimate, LoadModelRequest
from engine.security import RequestGuard
from engine.service import Engine

log = logging.getLogger(__name__)
ERRORS = {400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}}


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 415: "bad_media_type"}


def _error(status: int, code: str, message: str, detail: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=envelope(code, message, detail))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EngineError)
    async def engine_error(_: Request, e: EngineError) -> JSONResponse:
        return _error(e.status, e.code, e.message, e.detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(e.status_code, "http_error")
        if e.status_code == 404:
            message = f"No such route: {request.method} {request.url.path}."
        elif e.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        else:
            message = str(e.detail)
        return _error(e.status_code, code, message)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            ctx = errors[0].get("ctx", {})
            return _error(
                400,
                "malformed_json",
                f"The request body is not valid JSON ({ctx.get('error', 'parse error')}).",
            )
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc'][1:]) or 'body'}: {err['msg']}" for err in errors
        )
        return _error(422, "bad_request", f"Invalid request: {problems}")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(
            500, "internal_error", f"The engine failed on this request: {type(e).__name__}: {e}"
        )


def _auth(engine: Engine):
    bearer = HTTPBearer(auto_error=False)

    async def check(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        # async: checked on the event loop, so /health needs no thread of the busy pool
        token = engine.settings.token
        if token and (creds is None or not secrets.compare_digest(creds.credentials, token)):
            raise EngineError(
                401,
                "unauthorized",
                "This engine needs a token: send 'Authorization: Bearer <token>'.",
            )

    return check


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="Interpscope engine", version="0.1", dependencies=[Depends(_auth(engine))])
    _install_error_handlers(app)
    app.add_middleware(RequestGuard, settings=engine.settings)
    app.include_router(graph_router(engine))
    app.include_router(api_saes.router(engine))
    app.include_router(api_steering.router(engine))
    app.include_router(api_jobs.router(engine))
    app.include_router(api_directions.router(engine))
    app.include_router(api_models.router(engine))
    app.state.engine = engine

    @app.get("/health", response_model=Health)
    async def health() -> Health:  # on the event loop: answers however busy the thread pool is
        return engine.health()

    @app.get("/capabilities", response_model=Capabilities)
    def capabilities(model: str = Query(default=PRIMARY, pattern=SLOT_PATTERN)) -> Capabilities:
        return engine.capabilities(model)

    @app.post("/models/estimate", response_model=LoadEstimate, responses=ERRORS)
    def estimate_model(req: LoadModelRequest) -> LoadEstimate:
        """What loading a model would take (path, context cap, memory), from its config."""
        return engine.estimate(req)

    @app.post("/tokenize", response_model=TokenizeResponse, responses=ERRORS)
    def tokenize(req: PromptRequest) -> TokenizeResponse:
        _, infos = engine.tokenize(req.prompt, req.prepend_bos, req.model)
        return TokenizeResponse(tokens=infos, n_ctx=engine.require_model(req.model).n_ctx)

    @app.get("/analyses")
    def analyses() -> dict:
        return {
            name: {
                "description": a.description,
                "version": a.version,
                "params": a.params.model_json_schema(),
                "result": a.result.model_json_schema(),
            }
            for name, a in engine.analyses.items()
        }

    @app.post("/analysis/{name}", responses=ERRORS)
    def analysis(name: str, req: AnalysisRequest) -> Response:
        return Response(engine.analyze(name, req), media_type="application/json")

    @app.post("/jobs/{kind}", response_model=JobInfo, responses=ERRORS)
    def start_job(kind: str, params: dict) -> JobInfo:
        return engine.start_job(kind, params).info()

    @app.get("/jobs", response_model=list[JobInfo])
    def list_jobs() -> list[JobInfo]:
        return [j.info() for j in engine.jobs.list()]

    @app.get("/jobs/{job_id}", response_model=JobResult, responses=ERRORS)
    def get_job(job_id: str) -> JobResult:
        job = engine.jobs.get(job_id)
        return JobResult(job=job.info(), result=job.result if job.status.finished else None)

    @app.post("/jobs/{job_id}/cancel", response_model=JobInfo, responses=ERRORS)
    def cancel_job(job_id: str) -> JobInfo:
        return engine.jobs.cancel(job_id).info()

    def stats() -> dict:
        """The result cache's statistics, and the saved graphs' bytes against their limit."""
        out = engine.cache.stats().as_dict()
        try:
            out["graphs_bytes"] = engine.graphs.store.usage_bytes()
        except (EngineError, OSError):
            out["graphs_bytes"] = None
        out["graphs_limit_bytes"] = engine.settings.graphs_size_mb << 20
        return out

    @app.get("/cache/stats")
    def cache_stats() -> dict:
        return stats()

    @app.post("/cache/clear")
    def cache_clear() -> dict:
        engine.cache.clear()
        engine.runs.clear()
        return stats()

    return app
