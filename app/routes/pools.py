"""Create, list, inspect and delete pools."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.deps import EngineDep, PoolPath, ReadyEngine
from app.errors import error_responses
from app.schemas import PoolCreate, PoolInfo, PoolList

router = APIRouter(prefix="/v1/pools", tags=["pools"])


@router.post(
    "",
    name="create",
    response_model=PoolInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Create an empty pool",
    responses=error_responses(409, 422, 503),
)
async def create_pool(body: PoolCreate, engine: ReadyEngine) -> PoolInfo:
    return PoolInfo(**engine.create_pool(body.name, body.description))


@router.get("", name="list", response_model=PoolList, summary="List the pools")
async def list_pools(engine: EngineDep) -> PoolList:
    return PoolList(pools=[PoolInfo(**pool) for pool in engine.store.list_pools()])


@router.get(
    "/{pool}",
    name="get",
    response_model=PoolInfo,
    summary="One pool",
    responses=error_responses(404, 422),
)
async def get_pool(pool: PoolPath, engine: EngineDep) -> PoolInfo:
    return PoolInfo(**engine.store.get_pool(pool))


@router.delete(
    "/{pool}",
    name="delete",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a pool and its examples",
    responses=error_responses(404, 422),
)
async def delete_pool(pool: PoolPath, engine: EngineDep) -> Response:
    engine.delete_pool(pool)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
