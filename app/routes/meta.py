"""Liveness, readiness, service info and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

import app
from app.deps import EngineDep, MetricsDep, SettingsDep
from app.errors import RETRY_AFTER_S
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
async def ready(engine: EngineDep) -> JSONResponse:
    message = engine.load_error
    if engine.ready and not engine.serving:
        loaded, total = engine.pools_loading
        message = f"loading the stored pools ({loaded} of {total} loaded)"
    state = Readiness(
        ready=engine.serving,
        model_loaded=engine.ready,
        store_open=True,
        pools_loaded=engine.pools_loaded.is_set(),
        message=message,
    )
    headers = {} if engine.serving else {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(
        state.model_dump(), status_code=200 if engine.serving else 503, headers=headers
    )


@router.get("/v1/info", response_model=Info, summary="Version, model, device, limits")
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
            max_request_cost=settings.max_request_cost,
            request_timeout_s=settings.request_timeout_s,
            compute_queue=settings.compute_queue,
            write_queue=settings.write_queue,
        ),
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(collected: MetricsDep) -> Response:
    return Response(collected.render(), media_type="text/plain; version=0.0.4")
