"""Liveness, readiness, service info and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

import app
from app.auth import MetricsAccess, ReadAccess
from app.deps import EngineDep, MetricsDep, SettingsDep
from app.errors import RETRY_AFTER_S, error_responses
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
    message = engine.load_error or full
    if engine.ready and not engine.serving:
        loaded, total = engine.pools_loading
        message = f"loading the stored pools ({loaded} of {total} loaded)"
    if shutting_down:
        message = "shutting down"
    serving = engine.serving and not shutting_down
    state = Readiness(
        ready=serving,
        model_loaded=engine.ready,
        store_open=True,
        storage_full=full is not None,
        pools_loaded=engine.pools_loaded.is_set(),
        message=message,
    )
    headers = {} if serving else {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(state.model_dump(), status_code=200 if serving else 503, headers=headers)


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
            max_request_cost=settings.max_request_cost,
            request_timeout_s=settings.request_timeout_s,
            compute_queue=settings.compute_queue,
            write_queue=settings.write_queue,
        ),
        auth="api_key" if settings.api_key_entries else "none",
        tokenizers=engine.tokenizers,
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
def metrics(collected: MetricsDep) -> Response:
    return Response(collected.render(), media_type="text/plain; version=0.0.4")
