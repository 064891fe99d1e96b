"""Liveness, readiness, service info and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

import app
from app.auth import MetricsAccess, ReadAccess
from app.deps import EngineDep, MetricsDep, SettingsDep
from app.errors import error_responses
from app.schemas import Health, Info, Limits, Readiness
from selector.kernels import KERNEL_NAMES
from selector.search import METHODS

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="The model is loaded and the store open",
    responses={503: {"model": Readiness, "description": "Not ready yet"}},
)
async def ready(engine: EngineDep, request: Request) -> JSONResponse:
    shutting_down = request.app.state.shutdown.draining
    full = engine.store.storage_full
    state = Readiness(
        ready=engine.ready and not shutting_down,
        model_loaded=engine.ready,
        store_open=True,
        storage_full=full is not None,
        message="shutting down" if shutting_down else engine.load_error or full,
    )
    return JSONResponse(state.model_dump(), status_code=200 if state.ready else 503)


@router.get(
    "/v1/info",
    response_model=Info,
    summary="Version, model, device, limits, whether API keys are required",
    dependencies=[ReadAccess],
    responses=error_responses(401),
)
async def info(engine: EngineDep, settings: SettingsDep) -> Info:
    return Info(
        version=app.__version__,
        model=engine.model,
        dimension=engine.dimension,
        device=engine.device,
        kernels=list(KERNEL_NAMES),
        methods=list(METHODS),
        limits=Limits(
            max_upsert_batch=settings.max_upsert_batch,
            max_body_bytes=settings.max_body_bytes,
            max_import_bytes=settings.max_import_bytes,
            max_prompt_chars=settings.max_prompt_chars,
            max_response_chars=settings.max_response_chars,
        ),
        auth="api_key" if settings.api_key_entries else "none",
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics (needs a key when MMDSHOT_METRICS_REQUIRE_KEY is set)",
    dependencies=[MetricsAccess],
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        # The error body is JSON, not the route's text/plain.
        401: {
            "description": error_responses(401)[401]["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    },
)
async def metrics(collected: MetricsDep) -> Response:
    return Response(collected.render(), media_type="text/plain; version=0.0.4")
