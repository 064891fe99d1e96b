"""The service's engine: the embedder, the store, prepared pools and the bounded compute
executor, with no HTTP in it. Routes call its methods; blocking work goes through
:meth:`Engine.run`, which answers 429 (``overloaded``) instead of queueing without bound."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import selector
from app import schemas
from app.config import Settings
from app.errors import ApiError
from app.store import PoolRows, PoolStamp, PreparedExample, UpsertOutcome, open_store
from selector.embedding import Embedder, TokenCounter, content_hash, load_sentence_embedder

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_K = 8
QUERY_CACHE_ENTRIES = 10_000
_INDEX_FILE = re.compile(r"^v\d+(-\d+)?\.faiss$")


class BoundedExecutor:
    """Threads for blocking work with a fixed number of slots (running plus waiting); a call
    that finds every slot taken is refused with 429 rather than queued."""

    def __init__(self, workers: int, queue: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compute")
        self._slots = threading.BoundedSemaphore(workers + queue)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if not self._slots.acquire(blocking=False):
            raise ApiError(429, "overloaded", "the service is busy; retry shortly")
        try:
            future = self._pool.submit(function, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class Snapshot:
    """A pool prepared for selection at one version: its rows, the library's
    :class:`selector.Pool`, each example id's position, and the pool's stored calibration."""

    name: str
    rows: PoolRows
    pool: selector.Pool
    position: dict[str, int]
    calibration: dict[str, Any] | None = None

    @property
    def version(self) -> int:
        return self.rows.version


@dataclass(frozen=True)
class CalibrationPlan:
    """A checked calibration request: the pool as it was when asked, the held-out rows
    ``validation_rows: (V,)`` and the scorer (None: the library's label purity)."""

    snapshot: Snapshot
    request: schemas.CalibrateRequest
    validation_rows: np.ndarray
    scorer: selector.Scorer | None

    @property
    def settings(self) -> int:
        """Settings to score: each distinct tau, and knn."""
        return len(set(self.request.taus)) + 1


def build_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name (loading MiniLM takes seconds)."""
    if settings.embedder == "hashing":
        return selector.HashingEmbedder(settings.hashing_dimension)
    # The model is on disk: the service keeps every Hugging Face library off the network (the
    # library itself reads no environment variables).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = settings.model_cache
    if cache is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmdshot"
    return load_sentence_embedder(
        settings.model_path,
        backend=settings.embedding_backend,
        device=str(selector.resolve_device(settings.device)),
        cache_dir=cache,
    )


def build_token_counter(settings: Settings) -> TokenCounter:
    """Token counts for budgets: the configured model's tokenizer, else the bundled one."""
    if settings.model_path is not None and (settings.model_path / "tokenizer.json").is_file():
        return selector.HFTokenCounter(settings.model_path / "tokenizer.json")
    return selector.HFTokenCounter()


def example_hash(example: schemas.ExampleIn) -> str:
    """The content identity of an example: input, output and label (not id or metadata)."""
    return content_hash(json.dumps([example.input, example.output, example.label]))


class Engine:
    """Everything a request needs. Models load in :meth:`load_models` (a background thread at
    startup); until then :attr:`ready` is false and model-backed calls answer 503."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings)
        if self.store.shared:
            # Indexes are a local cache of a database other replicas change, possibly while
            # this one was down: start with none rather than trust old files.
            shutil.rmtree(self.settings.data_dir / "indexes", ignore_errors=True)
        self.executor = BoundedExecutor(settings.compute_workers, settings.compute_queue)
        self.device = str(selector.resolve_device(settings.device))
        self._embedder: Embedder | None = None
        self._query_embedder: Embedder | None = None
        self._token_counter: TokenCounter | None = None
        self.load_error: str | None = None
        self._snapshots: dict[str, Snapshot] = {}
        self._snapshot_lock = threading.Lock()
        self._index_builds: set[tuple[str, PoolStamp]] = set()

    # --- lifecycle -----------------------------------------------------------------------

    def load_models(self) -> None:
        """Load the embedder and tokenizer; a failure is kept in :attr:`load_error`."""
        torch.set_num_threads(self.settings.torch_threads)
        try:
            embedder = build_embedder(self.settings)
            self._token_counter = build_token_counter(self.settings)
        except selector.SelectorError as exc:
            self.load_error = exc.message
            logger.error("model loading failed: %s", exc.message)
            return
        self._query_embedder = selector.CachedEmbedder(embedder, QUERY_CACHE_ENTRIES)
        self._embedder = embedder

    @property
    def ready(self) -> bool:
        return self._embedder is not None

    def require_ready(self) -> None:
        if not self.ready:
            message = self.load_error or "the embedding model is still loading"
            raise ApiError(503, "not_ready", message)

    @property
    def embedder(self) -> Embedder:
        self.require_ready()
        assert self._embedder is not None
        return self._embedder

    @property
    def model(self) -> str | None:
        return None if self._embedder is None else self._embedder.model_id

    @property
    def dimension(self) -> int | None:
        return None if self._embedder is None else self._embedder.dimension

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking ``function(*args)`` on the bounded executor (429 when full)."""
        return await self.executor.run(function, *args)

    def close(self) -> None:
        self.executor.shutdown()
        self.store.close()

    # --- pools and examples --------------------------------------------------------------

    def create_pool(self, name: str, description: str) -> dict[str, Any]:
        embedder = self.embedder
        return self.store.create_pool(name, description, embedder.model_id, embedder.dimension)

    def delete_pool(self, name: str) -> None:
        self.store.delete_pool(name)
        with self._snapshot_lock:
            self._snapshots.pop(name, None)
        shutil.rmtree(self._index_dir(name), ignore_errors=True)

    def prepare(
        self, examples: Sequence[schemas.ExampleIn], embedder: Embedder | None = None
    ) -> list[PreparedExample]:
        """Embed the inputs and count the tokens of ``examples``."""
        assert self._token_counter is not None
        vectors = (embedder or self.embedder).embed([example.input for example in examples])
        counts = self._token_counter.count(
            [f"{example.input}\n{example.output}" for example in examples]
        )
        prepared = []
        for example, vector, count in zip(examples, vectors, counts, strict=True):
            digest = example_hash(example)
            prepared.append(
                PreparedExample(
                    id=example.id or digest[:16],
                    input=example.input,
                    output=example.output,
                    label=example.label,
                    metadata=example.metadata,
                    content_hash=digest,
                    token_count=count,
                    vector=vector,
                )
            )
        return prepared

    def upsert(self, name: str, examples: Sequence[schemas.ExampleIn]) -> UpsertOutcome:
        self.store.pool_version(name)  # 404 before embedding anything
        return self.store.upsert(name, self.prepare(examples))

    # --- prepared pools ----------------------------------------------------------------

    def _index_dir(self, name: str) -> Path:
        return self.settings.data_dir / "indexes" / name

    def _index_path(self, name: str, rows: PoolRows) -> Path:
        # Named by the whole stamp: a pool deleted and re-created back at the same version
        # must never pick up a file that a late background build wrote for the old one.
        created = round(rows.created_at * 1e6)
        return self._index_dir(name) / f"v{rows.version}-{created}.faiss"

    def _saved_index(self, name: str, rows: PoolRows) -> selector.PoolIndex | None:
        """The pool's faiss index if this version's is on disk."""
        path = self._index_path(name, rows)
        return selector.PoolIndex.load(path) if path.exists() else None

    def _build_index_later(self, name: str, rows: PoolRows) -> None:
        """Build this version's index in a background thread; selections run exactly (no
        prefilter) until it is ready, then the snapshot is swapped for an indexed one."""
        key = (name, rows.stamp)
        with self._snapshot_lock:
            if key in self._index_builds:
                return
            self._index_builds.add(key)

        def build() -> None:
            try:
                index = self._build_index(name, rows)
                with self._snapshot_lock:
                    cached = self._snapshots.get(name)
                    if cached is not None and cached.rows.stamp == rows.stamp:
                        indexed = self._prepared(name, rows, index)
                        self._snapshots[name] = replace(indexed, calibration=cached.calibration)
            except Exception:  # a failed build leaves exact selection in place
                logger.exception("building the index of pool %r failed", name)
            finally:
                with self._snapshot_lock:
                    self._index_builds.discard(key)

        threading.Thread(target=build, name=f"index-{name}", daemon=True).start()

    def _build_index(self, name: str, rows: PoolRows) -> selector.PoolIndex:
        """Build the pool's faiss index and write it atomically (temp file + rename) beside
        the database, removing older versions' files."""
        folder = self._index_dir(name)
        path = self._index_path(name, rows)
        index = selector.PoolIndex.build(rows.vectors)
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(handle)
        index.save(temporary)
        os.replace(temporary, path)
        for stale in folder.iterdir():
            if stale != path and (_INDEX_FILE.match(stale.name) or stale.suffix == ".tmp"):
                stale.unlink(missing_ok=True)
        return index

    def _prepared(self, name: str, rows: PoolRows, index: selector.PoolIndex | None) -> Snapshot:
        if rows.model != self.embedder.model_id:
            raise ApiError(
                409,
                "conflict",
                f"pool {name!r} was embedded with {rows.model!r}, the service runs "
                f"{self.embedder.model_id!r}",
            )
        if not rows.ids:
            raise ApiError(422, "invalid_input", f"pool {name!r} is empty")
        labelled = all(label is not None for label in rows.labels)
        pool = selector.Pool.from_arrays(
            rows.vectors,
            labels=rows.labels if labelled else None,
            index=index,
            device=self.device,
            normalized=True,
        )
        position = {example_id: i for i, example_id in enumerate(rows.ids)}
        return Snapshot(name, rows, pool, position)

    def snapshot(self, name: str) -> Snapshot:
        """The pool prepared at its current version, with its current calibration (cached
        until the version changes, here or through another replica on a shared store)."""
        stamp, calibration = self.store.pool_state(name)
        with self._snapshot_lock:
            cached = self._snapshots.get(name)
            if cached is not None and cached.rows.stamp == stamp:
                if cached.calibration != calibration:
                    cached = replace(cached, calibration=calibration)
                    self._snapshots[name] = cached
                return cached
            if cached is not None and cached.rows.created_at != stamp[0]:
                # Deleted and re-created elsewhere: its index files describe the old pool.
                shutil.rmtree(self._index_dir(name), ignore_errors=True)
            rows = self.store.read_pool(name)
            large = len(rows.ids) > self.settings.index_above
            index = self._saved_index(name, rows) if large else None
            snapshot = replace(self._prepared(name, rows, index), calibration=calibration)
            self._snapshots[name] = snapshot
        if large and index is None:
            self._build_index_later(name, rows)
        return snapshot

    # --- selection -----------------------------------------------------------------------

    def _query_vectors(self, texts: Sequence[str]) -> np.ndarray:
        assert self._query_embedder is not None
        self.require_ready()
        return self._query_embedder.embed(list(texts))

    def _target(
        self, request: schemas.TargetChoice
    ) -> tuple[np.ndarray, list[float] | None, str | None]:
        """``(points (m, d), weights or None, the single query or None)``."""
        if request.query is not None:
            return self._query_vectors([request.query]), None, request.query
        if request.queries is not None:
            return self._query_vectors(request.queries), None, None
        assert request.target is not None
        if request.target.texts is not None:
            return self._query_vectors(request.target.texts), request.target.weights, None
        assert request.target.pool is not None
        return self.snapshot(request.target.pool).rows.vectors, None, None

    def select_in_pool(
        self, name: str, request: schemas.PoolSelectRequest
    ) -> schemas.PoolSelection:
        snapshot = self.snapshot(name)
        selection = self._select(snapshot, request)
        return schemas.PoolSelection(
            **selection.model_dump(), pool=name, pool_version=snapshot.version
        )

    def select_inline(self, request: schemas.StatelessSelectRequest) -> schemas.Selection:
        self.require_ready()
        prepared = self.prepare(request.candidates, self._query_embedder)
        rows = PoolRows(
            version=0,
            created_at=0.0,
            model=self.embedder.model_id,
            ids=[example.id for example in prepared],
            inputs=[example.input for example in prepared],
            outputs=[example.output for example in prepared],
            labels=[example.label for example in prepared],
            metadata=[example.metadata for example in prepared],
            token_counts=[example.token_count for example in prepared],
            vectors=np.stack([example.vector for example in prepared]),
        )
        return self._select(self._prepared("inline", rows, None), request)

    def _select(self, snapshot: Snapshot, request: schemas.TargetChoice) -> schemas.Selection:
        started = time.perf_counter()
        target, weights, query = self._target(request)
        embedded = time.perf_counter()
        tau, tau_source = chosen_tau(snapshot, request)
        result = selector.select(
            snapshot.pool,
            target,
            request.k or DEFAULT_K,
            target_weights=weights,
            **library_options(snapshot, request, tau),
        )
        return report(snapshot, result, request, tau_source, query, embedded - started, started)

    def select_batch(
        self, name: str, request: schemas.BatchSelectRequest
    ) -> schemas.BatchSelection:
        snapshot = self.snapshot(name)
        started = time.perf_counter()
        queries = self._query_vectors(request.queries)
        embed_share = (time.perf_counter() - started) / len(request.queries)
        tau, tau_source = chosen_tau(snapshot, request)
        results = selector.select_batch(
            snapshot.pool,
            queries,
            request.k or DEFAULT_K,
            **library_options(snapshot, request, tau),
        )
        return schemas.BatchSelection(
            pool=name,
            pool_version=snapshot.version,
            results=[
                report(snapshot, result, request, tau_source, query, embed_share, started)
                for result, query in zip(results, request.queries, strict=True)
            ],
        )

    # --- calibration ---------------------------------------------------------------------

    def plan_calibration(self, name: str, request: schemas.CalibrateRequest) -> CalibrationPlan:
        """Check a calibration of the pool ``name`` before it is queued: 404 unknown pool, 422
        a pool that cannot be scored (no labels and no outputs), a k or validation_size too
        large for it."""
        snapshot = self.snapshot(name)
        validation_rows = selector.carve_validation(
            snapshot.pool.size, request.validation_size, request.k, request.seed
        )
        scorer = None
        if snapshot.pool.label_ids is None:
            outputs = snapshot.rows.outputs
            if not all(outputs):
                raise ApiError(
                    422,
                    "invalid_input",
                    f"pool {name!r} cannot be calibrated: calibration scores the chosen "
                    "demonstrations by their labels, or by their outputs when the pool is not "
                    "labelled; give every example a label, or every example an output",
                )
            scorer = self._output_similarity_scorer(outputs)
        return CalibrationPlan(snapshot, request, validation_rows, scorer)

    def _output_similarity_scorer(self, outputs: Sequence[str]) -> selector.Scorer:
        """Output similarity of an unlabelled pool: the outputs are embedded as the scoring
        meets them (a held-out example's and its demonstrations'), not the whole pool's."""
        embedded: dict[int, np.ndarray] = {}

        def output_similarity(rows: np.ndarray, chosen: np.ndarray) -> float:
            missing = sorted((set(rows.tolist()) | set(chosen.ravel().tolist())) - set(embedded))
            if missing:
                vectors = self.embedder.embed([outputs[row] for row in missing])
                embedded.update(zip(missing, vectors, strict=True))
            return selector.output_similarity(
                torch.from_numpy(np.stack([embedded[row] for row in rows.tolist()])),
                torch.from_numpy(
                    np.stack([[embedded[row] for row in chosen_row] for chosen_row in chosen])
                ),
            )

        return output_similarity

    def calibrate(self, plan: CalibrationPlan) -> dict[str, Any]:
        """Run a planned calibration; returns it as the pool keeps it."""
        request = plan.request
        result = selector.calibrate(
            plan.snapshot.pool,
            request.k,
            taus=request.taus,
            validation_rows=plan.validation_rows,
            seed=request.seed,
            scorer=plan.scorer,
        )
        calibration = schemas.Calibration.model_validate(
            {
                "tau": result.tau,
                "kernel": result.kernel,
                "scores": [{"tau": tau, "score": score} for tau, score in result.scores.items()],
                "knn_score": result.knn_score,
                "beats_knn": result.beats_knn,
                "scorer": result.scorer,
                "k": result.k,
                "validation_size": result.validation_size,
                "seed": result.seed,
                "pool_version": plan.snapshot.version,
                "calibrated_at": time.time(),
            }
        )
        return calibration.model_dump()


def chosen_tau(
    snapshot: Snapshot, options: schemas.SelectionOptions
) -> tuple[float | str | None, schemas.TauSource]:
    """The tau of a selection and where it comes from: the request's; else the pool's
    calibrated tau, when the request uses the calibrated kernel with method mmd (a calibration
    of a pool that changed since, stale, still counts: a bandwidth follows the embedding
    geometry, which a few changes rarely move); else None, the kernel's default."""
    if options.tau is not None:
        return options.tau, "request"
    calibration = snapshot.calibration
    if (
        calibration is not None
        and options.method == "mmd"
        and options.kernel == calibration["kernel"]
    ):
        return float(calibration["tau"]), "calibrated"
    return None, "default"


def library_options(
    snapshot: Snapshot, options: schemas.SelectionOptions, tau: float | str | None
) -> dict[str, Any]:
    """The keyword arguments of :func:`selector.select` for ``options`` on this pool, with
    ``tau`` from :func:`chosen_tau`."""
    kwargs: dict[str, Any] = {
        "kernel": options.kernel,
        "tau": tau,
        "method": options.method,
        "joint": options.joint,
        "num_subsets": options.num_subsets,
        "compare_baselines": options.compare_baselines,
        "seed": options.seed,
    }
    if options.k_min is not None and options.k_max is not None:
        kwargs["k_range"] = (options.k_min, options.k_max)
    wanted = options.constraints
    if wanted is not None:
        unknown = [
            example_id for example_id in wanted.exclude_ids if example_id not in snapshot.position
        ]
        if unknown:
            raise ApiError(422, "invalid_input", "exclude_ids names unknown examples", unknown[:20])
        rows = snapshot.rows
        kwargs["constraints"] = selector.Constraints(
            token_budget=wanted.token_budget,
            token_counts=rows.token_counts if wanted.token_budget is not None else None,
            label_quotas=(
                {label: (quota.min, quota.max) for label, quota in wanted.label_quotas.items()}
                if wanted.label_quotas
                else None
            ),
            balance_labels=wanted.balance_labels,
            metadata_filter=wanted.metadata_filter,
            metadata=rows.metadata if wanted.metadata_filter else None,
            exclude=[snapshot.position[example_id] for example_id in wanted.exclude_ids],
            dedup_threshold=wanted.dedup_threshold,
        )
    return kwargs


def render_prompt(
    snapshot: Snapshot, order: Sequence[int], options: schemas.SelectionOptions, query: str | None
) -> str:
    """The demonstrations in ``order`` through the template, then the query, if one."""
    rows = snapshot.rows
    blocks = [
        options.template.format(
            id=rows.ids[i], input=rows.inputs[i], output=rows.outputs[i], label=rows.labels[i] or ""
        )
        for i in order
    ]
    if query is not None:
        blocks.append(options.query_template.format(query=query))
    return options.separator.join(blocks)


def report(
    snapshot: Snapshot,
    result: selector.SelectionResult,
    options: schemas.SelectionOptions,
    tau_source: schemas.TauSource,
    query: str | None,
    embed_seconds: float,
    started: float,
) -> schemas.Selection:
    """The response for one :class:`selector.SelectionResult`."""
    rows = snapshot.rows
    order = result.prompt_order if options.order == "relevance_last" else result.indices
    rank = {index: position for position, index in enumerate(result.indices)}
    milliseconds = {name: 1000.0 * seconds for name, seconds in result.timings.items()}
    return schemas.Selection(
        k=result.k,
        method=result.method,
        kernel=result.kernel,
        tau=result.tau,
        tau_source=tau_source,
        joint=result.joint,
        prefiltered=result.prefiltered,
        examples=[
            schemas.SelectedExample(
                id=rows.ids[i],
                input=rows.inputs[i],
                output=rows.outputs[i],
                label=rows.labels[i],
                metadata=rows.metadata[i],
                selection_rank=rank[i],
            )
            for i in order
        ],
        prompt=render_prompt(snapshot, order, options, query),
        mmd2=result.mmd2,
        mmd=result.mmd,
        bias_bound=result.bias_bound,
        bound=result.bound,
        subsets=[
            schemas.Subset(
                ids=[rows.ids[i] for i in subset.indices],
                mmd2=subset.mmd2,
                mmd=subset.mmd,
                bias_bound=subset.bias_bound,
                bound=subset.bound,
            )
            for subset in result.subsets
        ],
        baselines=result.baselines,
        target_label_distribution=(
            None
            if result.target_label_distribution is None
            else {str(label): p for label, p in result.target_label_distribution.items()}
        ),
        bounds_by_k=(
            None
            if result.bounds_by_k is None
            else {str(k): bound for k, bound in result.bounds_by_k.items()}
        ),
        timings=schemas.Timings(
            embed_ms=1000.0 * embed_seconds,
            scan_ms=milliseconds.get("scan", 0.0),
            select_ms=milliseconds.get("select", 0.0),
            refine_ms=milliseconds.get("refine", 0.0),
            total_ms=1000.0 * (time.perf_counter() - started),
        ),
    )
