"""Demonstration selection: in a pool, a batch of queries, or over inline candidates."""

from __future__ import annotations

from fastapi import APIRouter

from app import prefixes
from app.auth import ReadAccess
from app.compute import ComputeDep
from app.deps import MetricsDep, PoolPath, ReadyEngine
from app.engine import target_texts
from app.errors import error_responses
from app.prefixes import TrafficDep
from app.schemas import (
    BatchSelection,
    BatchSelectRequest,
    PoolSelection,
    PoolSelectRequest,
    Selection,
    StatelessSelectRequest,
)

router = APIRouter(tags=["selection"])
_ERRORS = error_responses(401, 404, 409, 413, 422, 429, 503)


@router.post(
    "/v1/pools/{pool}/select",
    response_model=PoolSelection,
    summary="Choose the k examples of the pool closest in MMD to the target",
    dependencies=[ReadAccess],
    responses=_ERRORS,
)
async def select(
    pool: PoolPath,
    body: PoolSelectRequest,
    engine: ReadyEngine,
    compute: ComputeDep,
    metrics: MetricsDep,
    traffic: TrafficDep,
) -> PoolSelection:
    if body.prefix is None:
        result = await compute.read(engine.select_in_pool, pool, body)
    else:
        result = await compute.read(prefixes.select_with_prefix, engine, pool, body)
    metrics.selection.labels("pool").observe(result.timings.total_ms / 1000.0)
    traffic.record(pool, target_texts(body) if body.target is None else [])
    return result


@router.post(
    "/v1/pools/{pool}/select/batch",
    response_model=BatchSelection,
    summary="Independent selections for many queries, computed as one batch",
    dependencies=[ReadAccess],
    responses=_ERRORS,
)
async def select_batch(
    pool: PoolPath,
    body: BatchSelectRequest,
    engine: ReadyEngine,
    compute: ComputeDep,
    metrics: MetricsDep,
    traffic: TrafficDep,
) -> BatchSelection:
    if body.prefix is None:
        result = await compute.read(engine.select_batch, pool, body)
    else:
        result = await compute.read(prefixes.select_batch_with_prefix, engine, pool, body)
    seconds = max(item.timings.total_ms for item in result.results) / 1000.0
    metrics.selection.labels("batch").observe(seconds)
    traffic.record(pool, body.queries)
    return result


@router.post(
    "/v1/select",
    response_model=Selection,
    summary="Select over inline candidates without storing them",
    dependencies=[ReadAccess],
    responses=_ERRORS,
)
async def select_inline(
    body: StatelessSelectRequest, engine: ReadyEngine, compute: ComputeDep, metrics: MetricsDep
) -> Selection:
    result = await compute.read(engine.select_inline, body)
    metrics.selection.labels("inline").observe(result.timings.total_ms / 1000.0)
    return result
