"""A pool's prefixes: create, list, read, rebuild and delete them (app/prefixes.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app import prefixes
from app.auth import ReadAccess, WriteAccess
from app.compute import ComputeDep
from app.deps import EngineDep, PoolPath, ReadyEngine
from app.errors import error_responses
from app.prefixes import TrafficDep
from app.schemas import POOL_NAME_PATTERN, PrefixCreate, PrefixInfo, PrefixList, PrefixRebuild

router = APIRouter(prefix="/v1/pools/{pool}/prefixes", tags=["prefixes"])
PrefixPath = Annotated[
    str, Path(pattern=POOL_NAME_PATTERN, description="Prefix name.", examples=["shared"])
]


@router.post(
    "",
    name="create",
    response_model=PrefixInfo,
    status_code=status.HTTP_201_CREATED,
    summary="Choose k examples by MMD to a target and keep them as the pool's prefix",
    description='The target is texts, another pool, or `"traffic"` (the pool\'s recent '
    "queries, MMDSHOT_TRAFFIC_SAMPLE). The prefix keeps its examples' texts and order as "
    "chosen now, and its block rendered once through its template: selections with "
    "`prefix` put it first, byte-identical on every call.",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503),
)
async def create_prefix(
    pool: PoolPath,
    body: PrefixCreate,
    response: Response,
    engine: ReadyEngine,
    compute: ComputeDep,
    traffic: TrafficDep,
) -> PrefixInfo:
    built = await compute.write(prefixes.build, engine, pool, body, traffic)
    response.headers["Location"] = f"/v1/pools/{pool}/prefixes/{built.name}"
    return built.info()


@router.get(
    "",
    name="list",
    response_model=PrefixList,
    summary="The pool's prefixes",
    dependencies=[ReadAccess],
    responses=error_responses(401, 404, 422),
)
def list_prefixes(pool: PoolPath, engine: EngineDep) -> PrefixList:
    return PrefixList(prefixes=[p.info() for p in prefixes.list_prefixes(engine.store, pool)])


@router.get(
    "/{name}",
    name="get",
    response_model=PrefixInfo,
    summary="One prefix, with its block and whether it is stale",
    dependencies=[ReadAccess],
    responses=error_responses(401, 404, 422),
)
def get_prefix(pool: PoolPath, name: PrefixPath, engine: EngineDep) -> PrefixInfo:
    return prefixes.read_prefix(engine.store, pool, name).info()


@router.post(
    "/{name}/rebuild",
    name="rebuild",
    response_model=PrefixInfo,
    summary="Choose the prefix again at the pool's current version",
    description='From its last target, or the body\'s `target` (`"traffic"`: the recorded '
    "queries; 409 `no_traffic` when there are none). Its name and options stay; its "
    "examples, block and hash change as the new choice says.",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503),
)
async def rebuild_prefix(
    pool: PoolPath,
    name: PrefixPath,
    engine: ReadyEngine,
    compute: ComputeDep,
    traffic: TrafficDep,
    body: PrefixRebuild | None = None,
) -> PrefixInfo:
    request = body or PrefixRebuild()
    built = await compute.write(prefixes.rebuild, engine, pool, name, request, traffic)
    return built.info()


@router.delete(
    "/{name}",
    name="delete",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a prefix (its pool and examples stay)",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def delete_prefix(
    pool: PoolPath, name: PrefixPath, engine: EngineDep, compute: ComputeDep
) -> Response:
    await compute.write(prefixes.delete_prefix, engine.store, pool, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
