"""Cache-stable prompts: prefixes as pool objects, the traffic reservoir, and selection with a
prefix.

A *prefix* is k examples of a pool chosen by MMD to a target set (texts, another pool, or the
pool's recorded traffic), kept in the store in a fixed order with their texts as they were when
it was built, and rendered once through its template: its block (``prefix_prompt``) is the same
bytes on every call, so a provider's prefix cache can serve it. A selection with a prefix
chooses a *slice* of k more by the greedy conditioned on the prefix's examples (the library's
``pinned``): the prompt is the prefix block, the prefix's separator, the slice (most relevant
last), then the query, and its bounds are those of the whole prompt.

A prefix is *stale* once one of its examples changed or was deleted after the pool version it
was built at (an example's ``changed`` version in the store); it keeps serving its block
unchanged, and a deleted example leaves it only when it is rebuilt.

Traffic sampling (``MMDSHOT_TRAFFIC_SAMPLE``: N > 0) keeps, per pool and in this process's
memory only, the N most recent query texts of its selections (``query``, ``queries``, a
batch's queries; never target texts); with 0, the default, nothing is kept. A rebuild (or a
creation) with ``target: "traffic"`` uses them as its target set.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, Request

import selector
from app import schemas
from app.cost import embedded_chars, selection_cost
from app.engine import (
    ResponseBudget,
    Snapshot,
    chosen_tau,
    library_options,
    render_messages,
    render_prompt,
    report,
    request_k,
    should_stop,
    target_texts,
)
from app.engine import _finite as finite
from app.errors import ApiError, not_found
from app.store import PoolRows, Row, Session, Store

if TYPE_CHECKING:
    from app.engine import Engine

Options = TypeVar("Options", schemas.PoolSelectRequest, schemas.BatchSelectRequest)
_PREFIX_COLUMNS = (
    "name, request, examples, built, content_hash, pool_version, created_at, updated_at"
)


# --- the traffic reservoir ------------------------------------------------------------------


class Traffic:
    """Per pool, the ``size`` most recent query texts of its selections (in memory; nothing
    is kept when ``size`` is 0)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queries: dict[str, deque[str]] = {}
        self._lock = threading.Lock()

    def record(self, pool: str, texts: Sequence[str]) -> None:
        if self.size <= 0 or not texts:
            return
        with self._lock:
            self._queries.setdefault(pool, deque(maxlen=self.size)).extend(texts)

    def sample(self, pool: str) -> list[str]:
        """The pool's recorded queries, oldest first; 409 ``no_traffic`` when there are none."""
        if self.size <= 0:
            raise ApiError(
                409,
                "no_traffic",
                "traffic sampling is off: set MMDSHOT_TRAFFIC_SAMPLE to the number of recent "
                "queries to keep per pool, or give target texts or a pool",
                {"traffic_sample": 0},
            )
        with self._lock:
            queries = list(self._queries.get(pool, ()))
        if not queries:
            raise ApiError(
                409,
                "no_traffic",
                f"no queries of pool {pool!r} were recorded yet (since this replica started); "
                "select from it first, or give target texts or a pool",
                {"traffic_sample": self.size, "recorded": 0},
            )
        return queries

    def forget(self, pool: str) -> None:
        with self._lock:
            self._queries.pop(pool, None)


async def get_traffic(request: Request) -> Traffic:
    traffic: Traffic = request.app.state.traffic
    return traffic


TrafficDep = Annotated[Traffic, Depends(get_traffic)]


# --- stored prefixes ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPrefix:
    """A prefix as the store keeps it: the request that built it, its examples' texts as
    built (``id``, ``input``, ``output``, ``label``), what the build reported (``built``:
    ``prompt``, ``tokens``, ``source``, ``target_size``, ``mmd2``) and whether it is stale."""

    pool: str
    name: str
    request: schemas.PrefixCreate
    examples: list[dict[str, Any]]
    built: dict[str, Any]
    content_hash: str
    pool_version: int
    created_at: float
    updated_at: float
    stale: bool

    @property
    def ids(self) -> list[str]:
        return [example["id"] for example in self.examples]

    @property
    def prompt(self) -> str:
        prompt: str = self.built["prompt"]
        return prompt

    def brief(self) -> schemas.PrefixBrief:
        return schemas.PrefixBrief(
            name=self.name, k=len(self.examples), prefix_hash=self.content_hash, stale=self.stale
        )

    def info(self) -> schemas.PrefixInfo:
        mmd2 = float(self.built["mmd2"])
        return schemas.PrefixInfo(
            **self.brief().model_dump(),
            pool=self.pool,
            ids=self.ids,
            examples=[schemas.PrefixExample(**example) for example in self.examples],
            prefix_prompt=self.prompt,
            prefix_tokens=int(self.built["tokens"]),
            pool_version=self.pool_version,
            source=self.built["source"],
            target_size=int(self.built["target_size"]),
            mmd2=mmd2,
            mmd=math.sqrt(max(mmd2, 0.0)),
            template=self.request.template,
            separator=self.request.separator,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


def _stale(db: Session, pool: str, ids: Sequence[str], version: int) -> bool:
    """Whether any of ``ids`` was deleted, or written after ``version``."""
    marks = ", ".join("?" * len(ids))
    row = db.execute(
        f"SELECT COUNT(*) AS n FROM examples WHERE pool = ? AND changed <= ? AND id IN ({marks})",
        (pool, version, *ids),
    ).fetchone()
    return int(row["n"]) < len(ids)


def _stored(db: Session, pool: str, row: Row) -> StoredPrefix:
    examples = json.loads(row["examples"])
    version = int(row["pool_version"])
    return StoredPrefix(
        pool=pool,
        name=row["name"],
        request=schemas.PrefixCreate.model_validate_json(row["request"]),
        examples=examples,
        built=json.loads(row["built"]),
        content_hash=row["content_hash"],
        pool_version=version,
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        stale=_stale(db, pool, [example["id"] for example in examples], version),
    )


def read_prefix(store: Store, pool: str, name: str) -> StoredPrefix:
    """One prefix of ``pool`` (404 for an unknown pool or prefix)."""
    with store._reading() as db:
        store._pool_row(db, pool)
        row = db.execute(
            f"SELECT {_PREFIX_COLUMNS} FROM prefixes WHERE pool = ? AND name = ?", (pool, name)
        ).fetchone()
        if row is None:
            raise not_found("prefix", name)
        return _stored(db, pool, row)


def list_prefixes(store: Store, pool: str) -> list[StoredPrefix]:
    """The prefixes of ``pool`` by name (404 for an unknown pool)."""
    with store._reading() as db:
        store._pool_row(db, pool)
        rows = db.execute(
            f"SELECT {_PREFIX_COLUMNS} FROM prefixes WHERE pool = ? ORDER BY name", (pool,)
        ).fetchall()
        return [_stored(db, pool, row) for row in rows]


def delete_prefix(store: Store, pool: str, name: str) -> None:
    with store._transaction() as db:
        store._pool_row(db, pool, for_update=True)
        deleted = db.execute(
            "DELETE FROM prefixes WHERE pool = ? AND name = ?", (pool, name)
        ).rowcount
        if not deleted:
            raise not_found("prefix", name)


def _save(store: Store, snapshot: Snapshot, built: Built, replace: bool) -> None:
    """Insert (409 for a name taken, or a pool at :data:`schemas.MAX_PREFIXES`) or replace
    (404 if gone) the prefix ``built`` from ``snapshot``; 404 when the pool was deleted (or
    re-created) since."""
    name = built.request.name
    now = time.time()
    values = (
        built.request.model_dump_json(),
        json.dumps(built.examples),
        json.dumps(built.report),
        built.content_hash,
        snapshot.version,
    )
    with store._transaction() as db:
        pool = store._pool_row(db, snapshot.name, for_update=True)
        if float(pool["created_at"]) != snapshot.rows.created_at:
            raise not_found("pool", snapshot.name)
        if replace:
            changed = db.execute(
                "UPDATE prefixes SET request = ?, examples = ?, built = ?, content_hash = ?, "
                "pool_version = ?, updated_at = ? WHERE pool = ? AND name = ?",
                (*values, now, snapshot.name, name),
            ).rowcount
            if not changed:
                raise not_found("prefix", name)
            return
        taken = db.execute("SELECT name FROM prefixes WHERE pool = ?", (snapshot.name,)).fetchall()
        if name in {row["name"] for row in taken}:
            raise ApiError(409, "conflict", f"prefix {name!r} already exists; rebuild or delete it")
        if len(taken) >= schemas.MAX_PREFIXES:
            raise ApiError(
                409,
                "conflict",
                f"pool {snapshot.name!r} holds {schemas.MAX_PREFIXES} prefixes, the most it "
                "may; delete one first",
                {"max_prefixes": schemas.MAX_PREFIXES},
            )
        db.execute(
            f"INSERT INTO prefixes (pool, {_PREFIX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (snapshot.name, name, *values, now, now),
        )


def count_tokens(engine: Engine, pool: str, text: str) -> int:
    """Tokens of ``text`` by the tokenizer the pool ``pool`` counts with."""
    counter = engine.token_counter(engine.store.pool_tokenizer(pool))
    return int(counter.count([text])[0])


# --- building -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    request: schemas.PrefixCreate
    examples: list[dict[str, Any]]
    report: dict[str, Any]
    content_hash: str


def prefix_rows(examples: Sequence[dict[str, Any]]) -> PoolRows:
    """The stored texts of a prefix's examples as rows to render (no vectors)."""
    count = len(examples)
    return PoolRows(
        version=0,
        created_at=0.0,
        model="",
        ids=[example["id"] for example in examples],
        inputs=[example["input"] for example in examples],
        outputs=[example["output"] for example in examples],
        labels=[example["label"] for example in examples],
        metadata=[{} for _ in examples],
        token_counts=[0] * count,
        vectors=np.zeros((count, 0), dtype=np.float32),
        seqs=np.arange(count, dtype=np.int64),
    )


def build(
    engine: Engine,
    pool: str,
    request: schemas.PrefixCreate,
    traffic: Traffic,
    replace: bool = False,
) -> StoredPrefix:
    """Choose the prefix's examples at the pool's current version, render its block and store
    it (create, or ``replace`` on rebuild)."""
    snapshot, _ = engine.loaded(pool)
    k = request_k(request)
    if k > snapshot.pool.size:
        raise ApiError(
            422,
            "invalid_input",
            f"a prefix of {k} examples needs a pool of at least {k}; "
            f"pool {pool!r} holds {snapshot.pool.size}",
            {"k": k, "pool_size": snapshot.pool.size},
        )
    target = request.target
    weights = None
    target_pool: Snapshot | None = None
    if isinstance(target, str):  # "traffic"
        texts, source = traffic.sample(pool), "traffic"
    elif target.texts is not None:
        texts, weights, source = target.texts, target.weights, "texts"
    else:
        assert target.pool is not None
        texts, source = [], "pool"
        target_pool = engine.loaded(target.pool)[0]
    engine.admit(
        selection_cost(
            pool=snapshot.pool.size,
            problems=1,
            target_points=len(texts) if target_pool is None else target_pool.pool.size,
            k=k,
            num_subsets=request.num_subsets,
            chars=embedded_chars(texts),
        )
    )
    points = (
        engine._query_vectors(snapshot, texts) if target_pool is None else target_pool.rows.vectors
    )
    tau, _ = chosen_tau(snapshot, request)
    result = selector.select(
        snapshot.pool,
        points,
        request.k or k,
        target_weights=weights,
        should_stop=should_stop(),
        **library_options(snapshot, request, tau),
    )
    order = result.prompt_order if request.order == "relevance_last" else result.indices
    rows = snapshot.rows
    examples = [
        {
            "id": rows.ids[i],
            "input": rows.inputs[i],
            "output": rows.outputs[i],
            "label": rows.labels[i],
        }
        for i in order
    ]
    prompt = render_prompt(
        prefix_rows(examples), range(len(examples)), request, None, ResponseBudget(engine.settings)
    )
    finite(result)
    built = Built(
        request=request,
        examples=examples,
        report={
            "prompt": prompt,
            "tokens": count_tokens(engine, snapshot.name, prompt),
            "source": source,
            "target_size": int(points.shape[0]),
            "mmd2": float(result.mmd2),
        },
        content_hash=hashlib.sha256(prompt.encode()).hexdigest(),
    )
    _save(engine.store, snapshot, built, replace)
    return read_prefix(engine.store, pool, request.name)


def rebuild(
    engine: Engine, pool: str, name: str, body: schemas.PrefixRebuild, traffic: Traffic
) -> StoredPrefix:
    """The prefix chosen again at the pool's current version, from its last target or
    ``body.target``; its name, options and creation time stay."""
    stored = read_prefix(engine.store, pool, name)
    request = stored.request
    if body.target is not None:
        request = request.model_copy(update={"target": body.target})
    return build(engine, pool, request, traffic, replace=True)


# --- selection with a prefix ----------------------------------------------------------------


def _slice_options(request: Options, prefix: StoredPrefix) -> Options:
    """The request with the prefix's template and separator where it set none of its own (its
    query template then follows the prefix's template), and no system text (it comes first,
    with the prefix's messages)."""
    update: dict[str, Any] = {"system": None}
    for field in ("template", "separator"):
        if field not in request.model_fields_set:
            update[field] = getattr(prefix.request, field)
    return request.model_copy(update=update)


@dataclass(frozen=True)
class Conditioned:
    """A selection request with its prefix: the pool, the prefix, the pool indices of its
    examples still in the pool (``pinned``) and the slice's size ``k``."""

    snapshot: Snapshot
    load_seconds: float
    prefix: StoredPrefix
    pinned: list[int]
    k: int


def _conditioned(
    engine: Engine, pool: str, request: schemas.PoolSelectRequest | schemas.BatchSelectRequest
) -> Conditioned:
    """404 for an unknown prefix, 422 for a prefix and slice larger than the pool."""
    assert request.prefix is not None
    snapshot, load_seconds = engine.loaded(pool)
    prefix = read_prefix(engine.store, pool, request.prefix)
    pinned = [snapshot.position[i] for i in prefix.ids if i in snapshot.position]
    k = request_k(request)
    if len(pinned) + k > snapshot.pool.size:
        raise ApiError(
            422,
            "invalid_input",
            f"the prefix's {len(pinned)} examples and a slice of {k} need {len(pinned) + k}; "
            f"pool {pool!r} holds {snapshot.pool.size}",
            {"prefix": len(pinned), "k": k, "pool_size": snapshot.pool.size},
        )
    return Conditioned(snapshot, load_seconds, prefix, pinned, k)


def _put_first(
    engine: Engine,
    conditioned: Conditioned,
    system: str | None,
    options: schemas.SelectionOptions,
    selection: schemas.Selection,
    result: selector.SelectionResult,
    budget: ResponseBudget,
) -> schemas.Selection:
    """``selection`` of the slice with the prefix's block (and messages) put first."""
    prefix = conditioned.prefix
    budget.take_prompt(len(prefix.prompt))
    messages = None
    prefix_messages = None
    if options.format == "messages":
        head = render_messages(
            prefix_rows(prefix.examples),
            range(len(prefix.examples)),
            prefix.request.model_copy(update={"system": system}),
            None,
            budget,
        )
        prefix_messages = len(head)
        messages = [*head, *(selection.messages or [])]
    part = schemas.PrefixSlice(
        name=prefix.name,
        prefix_hash=prefix.content_hash,
        prefix_ids=prefix.ids,
        prefix_prompt=prefix.prompt,
        slice_prompt=selection.prompt,
        prefix_tokens=int(prefix.built["tokens"]),
        slice_tokens=count_tokens(engine, conditioned.snapshot.name, selection.prompt),
        prefix_messages=prefix_messages,
        stale=prefix.stale,
        pinned=len(conditioned.pinned),
        slice_mmd2=float(result.chosen_mmd2),
        slice_mmd=float(result.chosen_mmd),
    )
    return selection.model_copy(
        update={
            "prompt": prefix.prompt + prefix.request.separator + selection.prompt,
            "messages": messages,
            "prefix": part,
        }
    )


def select_with_prefix(
    engine: Engine, pool: str, request: schemas.PoolSelectRequest
) -> schemas.PoolSelection:
    """A selection of ``request.k`` examples conditioned on the prefix ``request.prefix`` of
    ``pool``: the prompt is the prefix's block, its separator, the slice and the query."""
    conditioned = _conditioned(engine, pool, request)
    snapshot = conditioned.snapshot
    options = _slice_options(request, conditioned.prefix)
    target_pool, target_load = engine._target_pool(options)
    texts = target_texts(options)
    engine.admit(
        selection_cost(
            pool=snapshot.pool.size,
            problems=1,
            target_points=len(texts) if target_pool is None else target_pool.pool.size,
            k=conditioned.k + len(conditioned.pinned),
            num_subsets=options.num_subsets,
            chars=embedded_chars(texts),
        )
    )
    selection, result, budget = engine.selected(
        snapshot,
        options,
        target_pool,
        conditioned.load_seconds + target_load,
        k=options.k or conditioned.k,
        pinned=conditioned.pinned,
    )
    whole = _put_first(engine, conditioned, request.system, options, selection, result, budget)
    return schemas.PoolSelection(**whole.model_dump(), pool=pool, pool_version=snapshot.version)


def select_batch_with_prefix(
    engine: Engine, pool: str, request: schemas.BatchSelectRequest
) -> schemas.BatchSelection:
    """Independent selections for many queries, each a slice conditioned on the same prefix
    (one batched computation); each result is what :func:`select_with_prefix` gives."""
    conditioned = _conditioned(engine, pool, request)
    snapshot = conditioned.snapshot
    options = _slice_options(request, conditioned.prefix)
    if options.queries is None:
        raise ApiError(
            422, "invalid_input", "a prefix batch takes queries (texts), not query_embeddings"
        )
    engine.admit(
        selection_cost(
            pool=snapshot.pool.size,
            problems=len(options.queries),
            target_points=1,
            k=conditioned.k + len(conditioned.pinned),
            num_subsets=options.num_subsets,
            chars=embedded_chars(options.queries),
        )
    )
    started = time.perf_counter()
    queries = engine._query_vectors(snapshot, options.queries)
    embed_share = (time.perf_counter() - started) / len(options.queries)
    tau, tau_source = chosen_tau(snapshot, options)
    results = selector.select_batch(
        snapshot.pool,
        queries,
        options.k or conditioned.k,
        should_stop=should_stop(),
        pinned=conditioned.pinned,
        **library_options(snapshot, options, tau),
    )
    budget = ResponseBudget(engine.settings)
    selections = []
    for row, (result, query) in enumerate(zip(results, options.queries, strict=True)):
        selection = report(
            snapshot,
            result,
            options,
            tau_source,
            query,
            embed_share,
            started,
            budget,
            conditioned.load_seconds,
            target=(queries[row : row + 1], None),
        )
        selections.append(
            _put_first(engine, conditioned, request.system, options, selection, result, budget)
        )
    return schemas.BatchSelection(pool=pool, pool_version=snapshot.version, results=selections)
