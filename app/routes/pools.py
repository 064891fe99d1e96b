"""Create, list, inspect, calibrate and delete pools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from app import prefixes
from app.auth import ReadAccess, WriteAccess
from app.compute import ComputeDep
from app.deps import EngineDep, JobsDep, PoolPath, ReadyEngine
from app.engine import Engine
from app.errors import error_responses
from app.prefixes import TrafficDep
from app.schemas import CalibrateRequest, Job, PoolCreate, PoolInfo, PoolList

router = APIRouter(prefix="/v1/pools", tags=["pools"])


@router.post(
    "",
    name="create",
    response_model=PoolInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Create an empty pool",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 409, 422, 429, 503),
)
async def create_pool(body: PoolCreate, engine: ReadyEngine, compute: ComputeDep) -> PoolInfo:
    created = await compute.write(engine.create_pool, body.name, body.description, body.tokenizer)
    return PoolInfo(**created)


@router.get(
    "",
    name="list",
    response_model=PoolList,
    summary="List the pools",
    dependencies=[ReadAccess],
    responses=error_responses(401),
)
def list_pools(engine: EngineDep) -> PoolList:
    return PoolList(pools=[described(engine, pool) for pool in engine.store.list_pools()])


@router.get(
    "/{pool}",
    name="get",
    response_model=PoolInfo,
    summary="One pool",
    dependencies=[ReadAccess],
    responses=error_responses(401, 404, 422),
)
def get_pool(pool: PoolPath, engine: EngineDep) -> PoolInfo:
    return described(engine, engine.store.get_pool(pool))


def described(engine: Engine, pool: dict[str, Any]) -> PoolInfo:
    """The pool with the briefs of its prefixes."""
    briefs = [p.brief() for p in prefixes.list_prefixes(engine.store, pool["name"])]
    return PoolInfo(**pool, prefixes=briefs)


@router.delete(
    "/{pool}",
    name="delete",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a pool and its examples",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def delete_pool(
    pool: PoolPath, engine: EngineDep, compute: ComputeDep, traffic: TrafficDep
) -> Response:
    await compute.write(engine.delete_pool, pool)
    traffic.forget(pool)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{pool}/calibrate",
    name="calibrate",
    response_model=Job,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Choose the pool's tau on a validation split carved from it, in the background",
    description="Holds out `validation_size` examples (drawn with `seed`), chooses `k` "
    "demonstrations for each from the rest under every candidate tau and by knn, scores each "
    "setting (label purity, or output similarity for an unlabelled pool) and keeps the best "
    "tau with the pool: selections that leave tau unset use it (`tau_source: calibrated`). "
    "Answers a job (`GET /v1/jobs/{job}`); the result also shows in `GET /v1/pools/{pool}`.",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 404, 409, 422, 429, 503),
)
async def calibrate_pool(
    pool: PoolPath,
    body: CalibrateRequest,
    response: Response,
    engine: ReadyEngine,
    compute: ComputeDep,
    jobs: JobsDep,
) -> Job:
    # Checking the request reads the whole pool when it is not cached: off the event loop.
    job = Job(**await compute.write(jobs.submit_calibration, pool, body))
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job
