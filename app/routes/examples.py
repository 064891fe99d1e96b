"""Upsert, page through, read and delete the examples of a pool."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Query, status

from app.auth import ReadAccess, WriteAccess
from app.compute import ComputeDep
from app.deps import EngineDep, ExampleIdPath, PoolPath, ReadyEngine, SettingsDep
from app.errors import ApiError, error_responses
from app.schemas import MAX_PAGE, Duplicate, Example, ExamplePage, ExamplesUpsert, UpsertResult

router = APIRouter(prefix="/v1/pools/{pool}/examples", tags=["examples"])


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


MAX_SEQ = 2**63 - 1  # the stores' sequence is a signed 64-bit integer


def decode_cursor(cursor: str) -> int:
    """The sequence number after which the page starts; 422 for anything but ``seq:N`` with
    ``0 <= N < 2**63`` (a larger N overflows the store's integer)."""
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "seq" and value.isdigit() and int(value) <= MAX_SEQ:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError(422, "invalid_input", "malformed cursor", {"cursor": cursor})


@router.post(
    "",
    name="upsert",
    response_model=UpsertResult,
    summary="Insert or replace examples; content duplicates are reported, not stored",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 404, 409, 413, 422, 429, 503),
)
async def upsert_examples(
    pool: PoolPath,
    body: ExamplesUpsert,
    engine: ReadyEngine,
    compute: ComputeDep,
    settings: SettingsDep,
) -> UpsertResult:
    if len(body.examples) > settings.max_upsert_batch:
        raise ApiError(
            413,
            "payload_too_large",
            f"at most {settings.max_upsert_batch} examples per call; use /imports for more",
        )
    outcome = await compute.write(engine.upsert, pool, body.examples)
    return UpsertResult(
        pool=pool,
        version=outcome.version,
        inserted=outcome.inserted,
        updated=outcome.updated,
        duplicates=[Duplicate(position=p, existing_id=i) for p, i in outcome.duplicates],
    )


@router.get(
    "",
    name="list",
    response_model=ExamplePage,
    summary="Page through the examples in insertion order",
    dependencies=[ReadAccess],
    responses=error_responses(401, 404, 422),
)
def list_examples(
    pool: PoolPath,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ExamplePage:
    after = decode_cursor(cursor) if cursor else 0
    rows, following = engine.store.list_examples(pool, after, limit)
    return ExamplePage(
        examples=[Example(**row) for row in rows],
        next_cursor=None if following is None else encode_cursor(following),
    )


@router.get(
    "/{example_id}",
    name="get",
    response_model=Example,
    summary="One example",
    dependencies=[ReadAccess],
    responses=error_responses(401, 404, 422),
)
def get_example(pool: PoolPath, example_id: ExampleIdPath, engine: EngineDep) -> Example:
    return Example(**engine.store.get_example(pool, example_id))


@router.delete(
    "/{example_id}",
    name="delete",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one example (bumps the pool version)",
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def delete_example(
    pool: PoolPath, example_id: ExampleIdPath, engine: EngineDep, compute: ComputeDep
) -> None:
    await compute.write(engine.delete_example, pool, example_id)
