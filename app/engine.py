"""The service's engine: the embedder, the store, prepared pools and the bounded compute
executor, with no HTTP in it. Routes call its methods; compute and writes go through
:meth:`Engine.run`, which queues them per lane (reads, writes) and answers 429
(``overloaded``) instead of queueing without bound, and 503 (``timeout``) past the request
deadline. Each pool is loaded under its own lock: loading one never delays another's
selections."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import math
import os
import re
import shutil
import string
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch

import selector
from app import schemas
from app.batching import Batcher, Job
from app.config import DEFAULT_TOKENIZER, Settings
from app.cost import HEAVY_SHARE, Cost, embedded_chars, selection_cost
from app.embedders import (
    PROVIDED,
    EmbedderRegistry,
    ProvidedVectors,
    RemoteEmbedder,
    parse_models,
    unit_rows,
    vectors_or_422,
)
from app.errors import ApiError
from app.scores import example_scores
from app.store import (
    PoolRows,
    PoolStamp,
    PreparedExample,
    UpsertOutcome,
    apply_changes,
    open_store,
)
from selector.embedding import Embedder, TokenCounter, content_hash, load_sentence_embedder

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_K = 8
QUERY_CACHE_ENTRIES = 10_000
_INDEX_FILE = re.compile(r"^v\d+(-\d+)?\.faiss$")


LANES = ("read", "write")
"""The executor's lanes: ``read`` for selections, ``write`` for upserts, deletes, pool
creation and calibration requests."""


def lane_shares(read_share: float) -> dict[str, float]:
    """The worker time each lane gets while both have work waiting (``read_share`` of it for
    reads, the rest for writes, :attr:`Settings.read_share`); a lane alone gets all of it."""
    return {"read": read_share, "write": 1.0 - read_share}


RETRY_AFTER_S = 1
"""The ``Retry-After`` of a 429 from a full lane."""


@dataclass(eq=False)
class Task:
    """One call queued on or running in a :class:`FairExecutor`: ``stop`` is set when its
    caller gave up (deadline passed, client gone); ``deadline`` is on :func:`time.monotonic`."""

    lane: str
    function: Callable[..., Any]
    args: tuple[Any, ...]
    deadline: float
    future: Future[Any] = field(default_factory=Future)
    stop: threading.Event = field(default_factory=threading.Event)
    heavy: bool = False
    """It asked for a heavy slot (:meth:`FairExecutor.claim_heavy`)."""
    holds_heavy: bool = False

    def should_stop(self) -> bool:
        return self.stop.is_set() or time.monotonic() > self.deadline


_running = threading.local()


class _Deferred(Exception):
    """Raised in a worker by :meth:`FairExecutor.claim_heavy`: put the task back."""


def should_stop() -> Callable[[], bool] | None:
    """The running task's stop check on this thread (for the library's ``should_stop``),
    None outside the executor."""
    task: Task | None = getattr(_running, "task", None)
    return None if task is None else task.should_stop


def checkpoint() -> None:
    """Raise :class:`selector.SelectionCancelled` if this thread's task should stop: the
    engine's step boundaries outside the library (before embedding, before a commit)."""
    check = should_stop()
    if check is not None and check():
        raise selector.SelectionCancelled("the request was stopped by its caller")


class FairExecutor:
    """Worker threads for blocking work, fed from one bounded queue per lane (:data:`LANES`).
    A free worker takes the lane that has used the least worker time for its share
    (``shares``, equal by default; time a lane spends idle earns it no credit), so a burst of
    selections cannot starve writes, nor writes selections; a call that finds its lane's
    queue full is refused with 429 (and ``Retry-After``) rather than queued. A task whose
    caller gave up is dropped from its queue (:meth:`cancel`) or, once running, stops at its
    next step boundary (:func:`checkpoint`, the library's ``should_stop``). Heavy tasks
    (:meth:`claim_heavy`) run on at most all workers but one, so a burst of costly requests
    leaves one for the ordinary ones."""

    def __init__(
        self, workers: int, queues: dict[str, int], shares: dict[str, float] | None = None
    ) -> None:
        self.workers = workers
        self._limits = dict(queues)
        self._queues: dict[str, deque[Task]] = {lane: deque() for lane in queues}
        self._shares = {lane: (shares or {}).get(lane, 1.0) for lane in queues}
        self._used = dict.fromkeys(queues, 0.0)
        """Worker seconds each lane's tasks ran, for :meth:`_next`."""
        self._turn = 0
        self._busy = 0
        self._heavy_running = 0
        self.heavy_limit = max(1, workers - 1)
        self._closed = False
        self._condition = threading.Condition()
        self.completed = 0
        """Tasks run to the end (answered or failed), for tests and metrics."""
        self.dropped = 0
        """Tasks cancelled before they started."""
        self._threads = [
            threading.Thread(target=self._work, name=f"compute-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, lane: str, function: Callable[..., T], args: tuple[Any, ...], timeout: float
    ) -> Task:
        """Queue ``function(*args)`` on ``lane``, to finish within ``timeout`` seconds."""
        task = Task(lane, function, args, time.monotonic() + timeout)
        with self._condition:
            if self._closed:
                raise ApiError(503, "shutting_down", "the service is stopping; retry elsewhere")
            waiting = sum(len(queue) for queue in self._queues.values())
            idle = max(0, self.workers - self._busy - waiting)
            if len(self._queues[lane]) >= self._limits[lane] + idle:
                raise ApiError(
                    429,
                    "overloaded",
                    f"the service is busy ({lane} queue full); retry shortly",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self._queues[lane].append(task)
            self._condition.notify()
        return task

    def cancel(self, task: Task) -> None:
        """The caller gave up: drop ``task`` if still queued, else make it stop at its next
        step boundary."""
        task.stop.set()
        with self._condition:
            queue = self._queues[task.lane]
            if task in queue:
                queue.remove(task)
                self.dropped += 1
                if not task.future.cancel():  # deferred heavy: its future already runs
                    task.future.set_exception(selector.SelectionCancelled("cancelled"))

    def claim_heavy(self) -> None:
        """Called by the running task once it knows it is heavy: take a heavy slot, or go
        back to the front of its queue until one frees (the worker serves others meanwhile)."""
        task: Task = _running.task
        with self._condition:
            if task.holds_heavy:
                return
            task.heavy = True
            if self._heavy_running >= self.heavy_limit:
                raise _Deferred()
            self._heavy_running += 1
            task.holds_heavy = True

    def depth(self, lane: str) -> int:
        """Tasks waiting on ``lane``."""
        with self._condition:
            return len(self._queues[lane])

    def _next(self) -> Task | None:
        """The next task, from the lane furthest below its share of the worker time (ties
        taken in turn), skipping heavy tasks while every heavy slot is taken (call holding
        the condition)."""
        lanes = list(self._queues)
        waiting = [lane for lane in lanes if self._queues[lane]]
        if not waiting:
            return None
        least = min(self._used[lane] / self._shares[lane] for lane in waiting)
        for lane in lanes:  # an idle lane banks no time to spend later in a burst
            if not self._queues[lane]:
                self._used[lane] = max(self._used[lane], least * self._shares[lane])
        rotated = [lanes[(self._turn + offset) % len(lanes)] for offset in range(len(lanes))]
        ranked = sorted(
            waiting, key=lambda lane: (self._used[lane] / self._shares[lane], rotated.index(lane))
        )
        heavy_full = self._heavy_running >= self.heavy_limit
        for lane in ranked:
            for task in self._queues[lane]:
                if not (task.heavy and heavy_full):
                    self._queues[lane].remove(task)
                    self._turn = (lanes.index(lane) + 1) % len(lanes)
                    return task
        return None

    def _work(self) -> None:
        while True:
            with self._condition:
                task = self._next()
                while task is None and not self._closed:
                    self._condition.wait()
                    task = self._next()
                if task is None:
                    return
                self._busy += 1
            deferred = False
            started = time.perf_counter()
            try:
                if task.future.running() or task.future.set_running_or_notify_cancel():
                    deferred = self._run(task)
            finally:
                with self._condition:
                    self._used[task.lane] += time.perf_counter() - started
                    self._busy -= 1
                    if task.holds_heavy:
                        self._heavy_running -= 1
                        self._condition.notify_all()  # a deferred heavy task may go now
                    if deferred and not self._closed:
                        self._queues[task.lane].appendleft(task)
                    elif deferred:
                        task.future.set_exception(selector.SelectionCancelled("stopping"))
                    else:
                        self.completed += 1

    @staticmethod
    def _run(task: Task) -> bool:
        """Run ``task``; true when it was deferred (:meth:`claim_heavy`)."""
        _running.task = task
        try:
            if task.should_stop():
                raise selector.SelectionCancelled("the request was stopped before it started")
            task.future.set_result(task.function(*task.args))
        except _Deferred:
            return True
        except BaseException as exc:
            task.future.set_exception(exc)
        finally:
            _running.task = None
        return False

    def shutdown(self) -> None:
        """Refuse new work, drop what is queued, let running tasks finish."""
        with self._condition:
            self._closed = True
            for queue in self._queues.values():
                for task in queue:
                    if not task.future.cancel():  # a deferred heavy task's future runs
                        task.future.set_exception(selector.SelectionCancelled("stopping"))
                queue.clear()
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()


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


class Selected(NamedTuple):
    """One selection's response, the library's result it reports and the response budget
    it drew on."""

    selection: schemas.Selection
    result: selector.SelectionResult
    budget: ResponseBudget


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
    """The default embedder the settings name (loading MiniLM takes seconds): the remote
    server when ``embedding_url`` is set."""
    if settings.embedding_url is not None:
        key = settings.embedding_api_key
        return RemoteEmbedder(
            settings.embedding_url,
            api_key=None if key is None else key.get_secret_value(),
            model=settings.embedding_model,
            batch_size=settings.embedding_batch_size,
            timeout_s=settings.embedding_timeout_s,
            retries=settings.embedding_retries,
        )
    if settings.embedder == "hashing":
        return selector.HashingEmbedder(settings.hashing_dimension)
    return build_local_embedder(settings, settings.model_path)


def build_local_embedder(settings: Settings, model_path: Path | None) -> Embedder:
    """A local sentence-transformers folder (None: the bundled MiniLM) on the settings'
    backend and device."""
    # The model is on disk: the service keeps every Hugging Face library off the network (the
    # library itself reads no environment variables).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache = settings.model_cache
    if cache is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmdshot"
    return load_sentence_embedder(
        model_path,
        backend=settings.embedding_backend,
        device=str(selector.resolve_device(settings.device)),
        cache_dir=cache,
    )


def build_token_counters(settings: Settings) -> dict[str, TokenCounter]:
    """The tokenizers pools may name: ``default`` (the configured model's tokenizer, else the
    bundled one) and each of ``settings.tokenizers``."""
    model_tokenizer = None  # HFTokenCounter's default: the bundled one
    if settings.model_path is not None and (settings.model_path / "tokenizer.json").is_file():
        model_tokenizer = settings.model_path / "tokenizer.json"
    counters: dict[str, TokenCounter] = {
        DEFAULT_TOKENIZER: selector.HFTokenCounter(model_tokenizer)
    }
    for name, path in settings.tokenizers.items():
        counters[name] = selector.HFTokenCounter(path)
    return counters


def example_hash(example: schemas.ExampleIn) -> str:
    """The content identity of an example: input, output and label (not id or metadata)."""
    return content_hash(json.dumps([example.input, example.output, example.label]))


def freeze_heap() -> None:
    """Collect garbage once, then move every object that survives (the imported libraries,
    the app, the loaded models: about 240,000 objects with the hashing embedder) into the
    collector's permanent generation (:func:`gc.freeze`). A full (generation 2) collection
    traverses every tracked object while holding the GIL, and found nothing to free among
    these: during a 50 MB import such collections, triggered by the job's allocations, held
    the GIL 96-214 ms each (the event loop, and so ``/health``, waited as long; measured with
    a ``gc.callbacks`` timer). Frozen, they are skipped: a full collection then takes about
    6 ms. Objects created later (pools, caches) are collected as usual; frozen ones are still
    freed by reference counting, only a reference cycle among them would be kept."""
    gc.collect()
    gc.freeze()


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
        self.executor = FairExecutor(
            settings.compute_workers,
            {"read": settings.compute_queue, "write": settings.write_queue},
            lane_shares(settings.read_share),
        )
        self.device = str(selector.resolve_device(settings.device))
        self._embedder: Embedder | None = None
        self._query_embedder: Embedder | None = None
        self._token_counters: dict[str, TokenCounter] = {}
        self.embedders: EmbedderRegistry | None = None
        """The models pools may name (:mod:`app.embedders`), once :meth:`load_models` ran."""
        self._batchers: dict[Embedder, Batcher] = {}
        self.load_error: str | None = None
        self._snapshots: dict[str, Snapshot] = {}
        # Guards the dictionaries only (held for no I/O); a pool loads under its own lock.
        self._guard = threading.Lock()
        self._pool_locks: dict[str, threading.Lock] = {}
        self._index_builds: set[tuple[str, PoolStamp]] = set()
        self._closing = False
        self.pools_loaded = threading.Event()
        """Set once the pools stored at start are loaded (:meth:`load_pools`)."""
        self.pools_loading = (0, 0)
        """``(loaded, total)`` of the pools stored at start, while they load."""

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """The startup work of the background thread: the models, then every stored pool."""
        try:
            self.load_models()
            if self.ready:
                self.load_pools()
        finally:
            self.pools_loaded.set()

    def load_pools(self) -> None:
        """Load every stored pool (so the first selection on each does not pay for it); a
        pool that cannot be prepared (empty, another model's) is left for its requests to
        report."""
        names = [pool["name"] for pool in self.store.list_pools()]
        for done, name in enumerate(names):
            self.pools_loading = (done, len(names))
            if self._closing:
                return
            try:
                self.snapshot(name)
            except (ApiError, selector.SelectorError) as exc:
                logger.info("pool %r not loaded at start: %s", name, exc)
            except Exception:
                if not self._closing:  # else: the store closed under the load
                    logger.exception("loading pool %r at start failed", name)
        self.pools_loading = (len(names), len(names))

    @property
    def serving(self) -> bool:
        """Ready for traffic: the model is loaded and, with ``ready_after_load``, the pools."""
        return self.ready and (not self.settings.ready_after_load or self.pools_loaded.is_set())

    def load_models(self) -> None:
        """Load the embedder and tokenizer; a failure is kept in :attr:`load_error`."""
        torch.set_num_threads(self.settings.torch_threads)
        try:
            embedder = build_embedder(self.settings)
            self._token_counters = build_token_counters(self.settings)
            models = parse_models(self.settings.models)
        except selector.SelectorError as exc:
            self.load_error = public_load_error(exc.message)
            logger.error("model loading failed: %s", exc.message)
            return
        except ValueError as exc:
            self.load_error = str(exc)
            logger.error("MMDSHOT_MODELS: %s", exc)
            return
        bundled = (
            self.settings.embedding_url is None
            and self.settings.embedder == "minilm"
            and self.settings.model_path is None
        )
        self.embedders = EmbedderRegistry(
            embedder,
            models,
            functools.partial(build_local_embedder, self.settings),
            bundled_is_default=bundled,
        )
        self._query_embedder = selector.CachedEmbedder(embedder, QUERY_CACHE_ENTRIES)
        freeze_heap()  # before ready: the one long collection happens during startup
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
        if isinstance(self._embedder, RemoteEmbedder):  # never a request to answer /v1/info
            return self._embedder.known_dimension
        return None if self._embedder is None else self._embedder.dimension

    async def run(
        self,
        lane: str,
        function: Callable[..., T],
        *args: Any,
        gone: Callable[[], Awaitable[object]] | None = None,
    ) -> T:
        """Run blocking ``function(*args)`` on the executor's ``lane`` (429 when its queue is
        full) and answer within ``request_timeout_s``: past it, 503 ``timeout`` (the worker
        stops at its next step boundary). When ``gone()`` (the client went away) completes
        first, the work is cancelled and :class:`ClientGone` raised."""
        timeout = self.settings.request_timeout_s
        task = self.executor.submit(lane, function, args, timeout)
        result = asyncio.wrap_future(task.future)
        watcher = None if gone is None else asyncio.ensure_future(gone())
        waiting: set[asyncio.Future[Any]] = {result} if watcher is None else {result, watcher}
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:  # the request itself was cancelled (server shutdown)
            self.executor.cancel(task)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        if result in done:
            if result.cancelled():
                raise ApiError(503, "shutting_down", "the service is stopping; retry elsewhere")
            try:
                return result.result()
            except selector.SelectionCancelled as exc:  # the worker saw the deadline first
                raise timed_out(timeout) from exc
        self.executor.cancel(task)
        if watcher is not None and watcher in done:
            raise ClientGone()
        raise timed_out(timeout)

    def batcher_for(self, embedder: Embedder) -> Batcher:
        """The :class:`~app.batching.Batcher` of ``embedder`` (one per embedder object; a
        :class:`selector.CachedEmbedder` shares its cache with the batcher)."""
        with self._guard:
            batcher = self._batchers.get(embedder)
            if batcher is None:
                cached = embedder if isinstance(embedder, selector.CachedEmbedder) else None
                batcher = Batcher(
                    cached.inner if cached is not None else embedder,
                    self.executor,
                    cache=cached,
                    window_s=self.settings.batch_window_ms / 1000.0,
                    max_batch=self.settings.batch_max_size,
                    max_tokens=self.settings.batch_max_tokens,
                    timeout_s=self.settings.request_timeout_s,
                    timed_out=timed_out,
                )
                self._batchers[embedder] = batcher
            return batcher

    def batch_counts(self) -> dict[str, int]:
        """Forwards, batches and jobs over every batcher (for the metrics)."""
        with self._guard:
            batchers = list(self._batchers.values())
        return {
            "forwards": sum(batcher.forwards for batcher in batchers),
            "batches": sum(batcher.batches for batcher in batchers),
            "jobs": sum(batcher.jobs for batcher in batchers),
        }

    def close(self) -> None:
        self._closing = True
        for batcher in self._batchers.values():
            batcher.close()
        self.executor.shutdown()
        self.store.close()

    # --- pools and examples --------------------------------------------------------------

    @property
    def tokenizers(self) -> list[str]:
        """The tokenizers a pool may name (``default`` first; none until the models load)."""
        return list(self._token_counters)

    def token_counter(self, tokenizer: str) -> TokenCounter:
        """The configured tokenizer ``tokenizer``; 422 when the service has none by that name
        (a pool created under a setting since changed)."""
        self.require_ready()
        counter = self._token_counters.get(tokenizer)
        if counter is None:
            raise ApiError(
                422,
                "invalid_input",
                f"no tokenizer {tokenizer!r} is configured (MMDSHOT_TOKENIZERS)",
                {"tokenizer": tokenizer, "tokenizers": self.tokenizers},
            )
        return counter

    def create_pool(
        self,
        name: str,
        description: str,
        model: str | None = None,
        dimension: int | None = None,
        tokenizer: str = DEFAULT_TOKENIZER,
    ) -> dict[str, Any]:
        """A new pool embedded by ``model`` (None: the default; ``provided``: the client's
        vectors of ``dimension``), counting tokens with ``tokenizer``."""
        self.require_ready()
        assert self.embedders is not None
        self.token_counter(tokenizer)  # 422 for an unknown one
        model = self.embedders.canonical(model)
        if model != PROVIDED:
            dimension = self.embedders.dimension_of(model)
        assert dimension is not None
        return self.store.create_pool(name, description, model, dimension, tokenizer)

    def embedder_for(self, pool: str | PoolRows, *, query: bool = False) -> Embedder:
        """The embedder of a pool (by name, or its rows): its model, shared with every pool
        that names it, or :class:`app.embedders.ProvidedVectors`; with ``query`` the one with
        the query cache in front."""
        self.require_ready()
        assert self.embedders is not None
        if isinstance(pool, PoolRows):
            return self.embedders.get(pool.model, int(pool.vectors.shape[1]), query=query)
        info = self.store.get_pool(pool)
        return self.embedders.get(info["model"], int(info["dimension"]), query=query)

    def delete_pool(self, name: str) -> None:
        self.store.delete_pool(name)
        with self._guard:
            self._snapshots.pop(name, None)
        shutil.rmtree(self._index_dir(name), ignore_errors=True)

    def prepare(
        self,
        examples: Sequence[schemas.ExampleIn],
        embedder: Embedder | None = None,
        tokenizer: str = DEFAULT_TOKENIZER,
    ) -> list[PreparedExample]:
        """Embed the inputs and count the tokens of ``examples`` (with the configured
        ``tokenizer``, a pool's); for a provided pool's embedder, take (and normalise) their
        ``embedding`` instead."""
        counter = self.token_counter(tokenizer)
        checkpoint()
        embedder = embedder or self.embedder
        if isinstance(embedder, ProvidedVectors):
            missing = [i for i, example in enumerate(examples) if example.embedding is None]
            if missing:
                raise ApiError(
                    422,
                    "invalid_input",
                    "this pool has provided embeddings: every example needs its embedding",
                    {"positions": missing[:20]},
                )
            vectors = vectors_or_422(
                [example.embedding or [] for example in examples], embedder.dimension, "embedding"
            )
        else:
            given = [i for i, example in enumerate(examples) if example.embedding is not None]
            if given:
                raise ApiError(
                    422,
                    "invalid_input",
                    f"this pool embeds its examples with {embedder.model_id!r}: leave out "
                    "embedding, or create the pool with embedding: provided",
                    {"positions": given[:20]},
                )
            vectors = embedder.embed([example.input for example in examples])
        counts = counter.count([f"{example.input}\n{example.output}" for example in examples])
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

    @staticmethod
    def vector_problem(example: schemas.ExampleIn, embedder: Embedder) -> str | None:
        """Why the pool of ``embedder`` refuses this example's embedding (or its lack of
        one), None when it does not: an import's bad line."""
        if not isinstance(embedder, ProvidedVectors):
            if example.embedding is not None:
                return f"this pool embeds with {embedder.model_id!r}: leave out embedding"
            return None
        if example.embedding is None:
            return "this pool has provided embeddings: the example needs its embedding"
        try:
            unit_rows([example.embedding], embedder.dimension)
        except ValueError as exc:
            return f"embedding: {exc}"
        return None

    def upsert(self, name: str, examples: Sequence[schemas.ExampleIn]) -> UpsertOutcome:
        tokenizer = self.store.pool_tokenizer(name)  # 404 before embedding anything
        prepared = self.prepare(examples, self.embedder_for(name), tokenizer=tokenizer)
        checkpoint()  # the caller gave up while it embedded: commit nothing
        outcome = self.store.upsert(name, prepared)
        if outcome.inserted or outcome.updated:
            self.refresh(name)
        return outcome

    def delete_example(self, name: str, example_id: str) -> int:
        """Delete one example; returns the new pool version."""
        version = self.store.delete_example(name, example_id)
        self.refresh(name)
        return version

    def refresh(self, name: str) -> None:
        """After a write that changed the pool ``name``: bring its cached snapshot to the new
        version in the writer's own task (:meth:`loaded`; a few changes are applied to the
        rows before, :meth:`read_pool`). Else the next selection pays for that reload, in the
        read lane, on a selection's clock: 15 ms of CPU on the soak's pool of 10,000 after
        each upsert of 4. A pool not loaded yet is left to its first selection, and one that
        cannot be prepared now (emptied) to its selections, which report why."""
        with self._guard:
            if name not in self._snapshots:
                return
        try:
            self.loaded(name)
        except (ApiError, selector.SelectorError) as exc:
            logger.info("pool %r not refreshed after a write: %s", name, exc)
        except Exception:  # the write is committed: its caller is answered all the same
            logger.exception("refreshing pool %r after a write failed", name)

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
        with self._guard:
            if key in self._index_builds:
                return
            self._index_builds.add(key)

        def build() -> None:
            try:
                index = self._build_index(name, rows)
                indexed = self._prepared(name, rows, index)
                with self._guard:
                    cached = self._snapshots.get(name)
                    if cached is not None and cached.rows.stamp == rows.stamp:
                        self._snapshots[name] = replace(indexed, calibration=cached.calibration)
            except Exception:  # a failed build leaves exact selection in place
                logger.exception("building the index of pool %r failed", name)
            finally:
                with self._guard:
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
        self.embedder_for(rows)  # 409: a model this server does not have
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
        return self.loaded(name)[0]

    def _cached(
        self, name: str, stamp: PoolStamp, calibration: dict[str, Any] | None
    ) -> Snapshot | None:
        """The cached snapshot if it is at ``stamp`` (with ``calibration`` brought up to date)."""
        with self._guard:
            cached = self._snapshots.get(name)
            if cached is None or cached.rows.stamp != stamp:
                return None
            if cached.calibration != calibration:
                cached = replace(cached, calibration=calibration)
                self._snapshots[name] = cached
            return cached

    def loaded(self, name: str) -> tuple[Snapshot, float]:
        """:meth:`snapshot` and the seconds this call spent loading it (0 when cached). A
        pool loads under its own lock, so requests for other pools never wait for it; while
        one request loads a newer version, the others answer from the version before (their
        ``pool_version`` says so) rather than queue behind the load: writers then cannot
        stall selections. A request that finds no load under way loads the newest version
        itself (a client's selection after its own upsert sees it unless another load was
        already running)."""
        stamp, calibration = self.store.pool_state(name)
        cached = self._cached(name, stamp, calibration)
        if cached is not None:
            return cached, 0.0
        started = time.perf_counter()
        with self._guard:
            lock = self._pool_locks.setdefault(name, threading.Lock())
            previous = self._snapshots.get(name)
        if not lock.acquire(blocking=False):
            if previous is not None and previous.rows.created_at == stamp[0]:
                return previous, 0.0  # a newer version is loading: answer from this one
            lock.acquire()
        try:
            stamp, calibration = self.store.pool_state(name)
            cached = self._cached(name, stamp, calibration)
            if cached is not None:  # another request loaded it while this one waited
                return cached, time.perf_counter() - started
            with self._guard:
                previous = self._snapshots.get(name)
            if previous is not None and previous.rows.created_at != stamp[0]:
                # Deleted and re-created elsewhere: its index files describe the old pool.
                shutil.rmtree(self._index_dir(name), ignore_errors=True)
            same_pool = previous is not None and previous.rows.created_at == stamp[0]
            rows = self.read_pool(name, previous.rows if same_pool and previous else None)
            large = len(rows.ids) > self.settings.index_above
            index = self._saved_index(name, rows) if large else None
            snapshot = replace(self._prepared(name, rows, index), calibration=calibration)
            with self._guard:
                self._snapshots[name] = snapshot
        finally:
            lock.release()
        if large and index is None:
            self._build_index_later(name, rows)
        return snapshot, time.perf_counter() - started

    def read_pool(self, name: str, since: PoolRows | None = None) -> PoolRows:
        """Every row of the pool, from the store (a seam: tests slow it down). Given the rows
        of an older version ``since``, only what changed after it is read and applied to
        them (a small write costs the next selection little), unless the store can no longer
        tell (then the whole pool is read)."""
        if since is not None:
            changes = self.store.read_changes(name, since.stamp)
            if changes is not None:
                return apply_changes(since, changes)
        return self.store.read_pool(name)

    # --- selection -----------------------------------------------------------------------

    def _query_vectors(self, snapshot: Snapshot, texts: Sequence[str]) -> np.ndarray:
        """The pool's model's embeddings of query texts (422 for a provided pool)."""
        return self.embedder_for(snapshot.rows, query=True).embed(list(texts))

    def _given_vectors(
        self, snapshot: Snapshot, vectors: Sequence[Sequence[float]], field: str
    ) -> np.ndarray:
        """Query vectors of a request as unit rows: 422 unless the pool is provided and they
        have its dimension, are finite and nonzero."""
        if snapshot.rows.model != PROVIDED:
            raise ApiError(
                422,
                "invalid_input",
                f"{field}: this pool embeds with {snapshot.rows.model!r}; send query text "
                "(vectors are for pools created with embedding: provided)",
                {"field": field},
            )
        return vectors_or_422(vectors, int(snapshot.rows.vectors.shape[1]), field)

    def _target(
        self, request: schemas.TargetChoice, target_pool: Snapshot | None, snapshot: Snapshot
    ) -> tuple[np.ndarray, list[float] | None, str | None]:
        """``(points (m, d), weights or None, the single query or None)``."""
        if request.query is not None:
            return self._query_vectors(snapshot, [request.query]), None, request.query
        if request.queries is not None:
            return self._query_vectors(snapshot, request.queries), None, None
        if request.query_embedding is not None:
            field = "query_embedding"
            return self._given_vectors(snapshot, [request.query_embedding], field), None, None
        if request.query_embeddings is not None:
            field = "query_embeddings"
            return self._given_vectors(snapshot, request.query_embeddings, field), None, None
        assert request.target is not None
        if request.target.texts is not None:
            texts = request.target.texts
            return self._query_vectors(snapshot, texts), request.target.weights, None
        if request.target.embeddings is not None:
            vectors = self._given_vectors(snapshot, request.target.embeddings, "target.embeddings")
            return vectors, request.target.weights, None
        assert target_pool is not None
        if (target_pool.rows.model, target_pool.rows.vectors.shape[1]) != (
            snapshot.rows.model,
            snapshot.rows.vectors.shape[1],
        ):
            raise ApiError(
                422,
                "invalid_input",
                f"target pool {target_pool.name!r} is embedded with {target_pool.rows.model!r}, "
                f"pool {snapshot.name!r} with {snapshot.rows.model!r}: a target pool needs the "
                "same model",
            )
        return target_pool.rows.vectors, None, None

    def _target_pool(self, request: schemas.TargetChoice) -> tuple[Snapshot | None, float]:
        """The snapshot of a ``target: {"pool": ...}`` and the seconds spent loading it."""
        if request.target is None or request.target.pool is None:
            return None, 0.0
        return self.loaded(request.target.pool)

    def admit(self, cost: Cost) -> None:
        """Refuse a request above the cost budget (422 ``too_costly``); mark a heavy one, which
        then waits for a heavy slot (:meth:`FairExecutor.claim_heavy`)."""
        budget = self.settings.max_request_cost
        if cost.total > budget:
            raise ApiError(
                422,
                "too_costly",
                f"the request would cost {cost.total:,} units, over the budget of {budget:,} "
                "(see /v1/info limits): ask for a smaller k, num_subsets, fewer queries or "
                "targets, or fewer inline characters",
                {"cost": cost.total, "budget": budget, **asdict(cost)},
            )
        if cost.total > HEAVY_SHARE * budget and should_stop() is not None:
            self.executor.claim_heavy()

    def select_in_pool(
        self,
        name: str,
        request: schemas.PoolSelectRequest,
        vectors: np.ndarray | None = None,
        embed_seconds: float = 0.0,
    ) -> schemas.PoolSelection:
        """One selection; ``vectors`` the query's embedding when it was embedded already
        (by a batch, in ``embed_seconds``)."""
        snapshot, load_seconds = self.loaded(name)
        target_pool, target_load = self._target_pool(request)
        texts = target_texts(request)
        points = target_points(request) if target_pool is None else target_pool.pool.size
        self.admit(
            selection_cost(
                pool=snapshot.pool.size,
                problems=1,
                target_points=points,
                k=request_k(request),
                num_subsets=request.num_subsets,
                chars=embedded_chars(texts),
            )
        )
        selection = self.selected(
            snapshot, request, target_pool, load_seconds + target_load, vectors, embed_seconds
        ).selection
        return schemas.PoolSelection(
            **selection.model_dump(), pool=name, pool_version=snapshot.version
        )

    def select_inline(self, request: schemas.StatelessSelectRequest) -> schemas.Selection:
        self.require_ready()
        texts = target_texts(request)
        given = [example.embedding for example in request.candidates]
        provided = given[0] is not None
        candidates = [] if provided else [example.input for example in request.candidates]
        self.admit(
            selection_cost(
                pool=len(request.candidates),
                problems=1,
                target_points=target_points(request),
                k=request_k(request),
                num_subsets=request.num_subsets,
                chars=embedded_chars(texts) + embedded_chars(candidates),
            )
        )
        # Candidates with vectors select on vectors (every one needs its own, of one size).
        assert self._query_embedder is not None
        embedder = ProvidedVectors(len(given[0] or [])) if provided else self._query_embedder
        prepared = self.prepare(request.candidates, embedder)
        rows = PoolRows(
            version=0,
            created_at=0.0,
            model=PROVIDED if provided else self.embedder.model_id,
            ids=[example.id for example in prepared],
            inputs=[example.input for example in prepared],
            outputs=[example.output for example in prepared],
            labels=[example.label for example in prepared],
            metadata=[example.metadata for example in prepared],
            token_counts=[example.token_count for example in prepared],
            vectors=np.stack([example.vector for example in prepared]),
            seqs=np.arange(len(prepared), dtype=np.int64),
        )
        return self.selected(self._prepared("inline", rows, None), request, None, 0.0).selection

    def selected(
        self,
        snapshot: Snapshot,
        request: schemas.TargetChoice,
        target_pool: Snapshot | None,
        load_seconds: float,
        vectors: np.ndarray | None = None,
        embed_seconds: float = 0.0,
        k: int | None = None,
        pinned: Sequence[int] = (),
    ) -> Selected:
        """One selection over ``snapshot`` for ``request`` of ``k`` examples (``request.k`` or
        the default when None) besides the ``pinned`` pool indices (``vectors``: the target's
        embeddings when a batch embedded them already, in ``embed_seconds``); with the
        library's result and the response budget the report drew on (a prefix's prompt is
        assembled after it)."""
        started = time.perf_counter() - embed_seconds
        if vectors is None:
            target, weights, query = self._target(request, target_pool, snapshot)
        else:
            target, weights, query = vectors, None, request.query
        embedded = time.perf_counter() if vectors is None else started + embed_seconds
        tau, tau_source = chosen_tau(snapshot, request)
        result = selector.select(
            snapshot.pool,
            target,
            k or request.k or DEFAULT_K,
            target_weights=weights,
            should_stop=should_stop(),
            pinned=pinned,
            **library_options(snapshot, request, tau),
        )
        budget = ResponseBudget(self.settings)
        selection = report(
            snapshot,
            result,
            request,
            tau_source,
            query,
            embedded - started,
            started,
            budget,
            load_seconds,
            target=(target, weights),
        )
        return Selected(selection, result, budget)

    def select_batch(
        self,
        name: str,
        request: schemas.BatchSelectRequest,
        vectors: np.ndarray | None = None,
        embed_seconds: float = 0.0,
    ) -> schemas.BatchSelection:
        """Independent selections of ``request.queries``; ``vectors`` their embeddings when a
        batch embedded them already (in ``embed_seconds``)."""
        snapshot, load_seconds = self.loaded(name)
        self.admit(
            selection_cost(
                pool=snapshot.pool.size,
                problems=request.size,
                target_points=1,
                k=request_k(request),
                num_subsets=request.num_subsets,
                chars=embedded_chars(request.queries or []),
            )
        )
        started = time.perf_counter() - embed_seconds
        if vectors is not None:
            queries = vectors
        elif request.queries is not None:
            queries = self._query_vectors(snapshot, request.queries)
        else:
            assert request.query_embeddings is not None
            queries = self._given_vectors(snapshot, request.query_embeddings, "query_embeddings")
        embed_share = (time.perf_counter() - started) / request.size
        if vectors is not None:
            embed_share = embed_seconds / request.size
        texts: list[str | None] = [*request.queries] if request.queries else [None] * request.size
        tau, tau_source = chosen_tau(snapshot, request)
        results = selector.select_batch(
            snapshot.pool,
            queries,
            request.k or DEFAULT_K,
            should_stop=should_stop(),
            **library_options(snapshot, request, tau),
        )
        budget = ResponseBudget(self.settings)
        return schemas.BatchSelection(
            pool=name,
            pool_version=snapshot.version,
            results=[
                report(
                    snapshot,
                    result,
                    request,
                    tau_source,
                    query,
                    embed_share,
                    started,
                    budget,
                    load_seconds,
                    target=(queries[row : row + 1], None),
                )
                for row, (result, query) in enumerate(zip(results, texts, strict=True))
            ],
        )

    # --- batched selection (app/batching.py) -------------------------------------------

    async def select_batched(
        self,
        name: str,
        request: schemas.PoolSelectRequest,
        gone: Callable[[], Awaitable[object]] | None = None,
    ) -> schemas.PoolSelection:
        """``select_in_pool``; a single ``query`` goes through its model's batcher, joining
        the selections of the same pool and settings arriving with it (one forward, one
        ``select_batch``). Other targets run alone."""
        batcher = None if request.query is None else await asyncio.to_thread(self._batcher, name)
        if batcher is None or request.query is None:
            return await self.run("read", self.select_in_pool, name, request, gone=gone)
        key = ("one", name, request.model_dump_json(exclude={"query"}))
        job = (name, request)
        return await batcher.submit(key, [request.query], self._select_group, job, gone)

    async def select_batch_batched(
        self,
        name: str,
        request: schemas.BatchSelectRequest,
        gone: Callable[[], Awaitable[object]] | None = None,
    ) -> schemas.BatchSelection:
        """``select_batch``; query texts go through their model's batcher, sharing forwards
        with the requests arriving with them."""
        batcher = None if request.queries is None else await asyncio.to_thread(self._batcher, name)
        if batcher is None or request.queries is None:
            return await self.run("read", self.select_batch, name, request, gone=gone)
        key = ("batch", name, request.model_dump_json(exclude={"queries"}))
        job = (name, request)
        return await batcher.submit(key, request.queries, self._batch_group, job, gone)

    def _batcher(self, name: str) -> Batcher | None:
        """The batcher of the loaded pool ``name``'s query embedder; None for a pool not
        loaded yet or one of provided vectors (those take the unbatched path)."""
        self.require_ready()
        with self._guard:
            snapshot = self._snapshots.get(name)
        if snapshot is None or snapshot.rows.model == PROVIDED:
            return None
        return self.batcher_for(self.embedder_for(snapshot.rows, query=True))

    def _select_group(self, jobs: list[Job], vectors: list[np.ndarray]) -> list[Any]:
        """The jobs of one pool and settings: alone, ``select_in_pool``; several single
        queries, one ``selector.select_batch`` (row b equals ``select`` of query b)."""
        name = jobs[0].payload[0]
        if len(jobs) == 1:
            job = jobs[0]
            return [
                _job_result(
                    lambda: self.select_in_pool(name, job.payload[1], vectors[0], job.embed_seconds)
                )
            ]
        snapshot, load_seconds = self.loaded(name)
        results: list[Any] = [None] * len(jobs)
        admitted: list[int] = []
        for position, job in enumerate(jobs):
            request = job.payload[1]
            try:
                self.admit(
                    selection_cost(
                        pool=snapshot.pool.size,
                        problems=1,
                        target_points=1,
                        k=request_k(request),
                        num_subsets=request.num_subsets,
                        chars=embedded_chars(job.texts),
                    )
                )
                admitted.append(position)
            except ApiError as exc:
                results[position] = exc
        if not admitted:
            return results
        first: schemas.PoolSelectRequest = jobs[admitted[0]].payload[1]
        started = time.perf_counter() - jobs[0].embed_seconds
        tau, tau_source = chosen_tau(snapshot, first)
        chosen = selector.select_batch(
            snapshot.pool,
            np.concatenate([vectors[position] for position in admitted]),
            first.k or DEFAULT_K,
            should_stop=should_stop(),
            **library_options(snapshot, first, tau),
        )

        def answer(job: Job, result: selector.SelectionResult, rows: np.ndarray) -> Any:
            request = job.payload[1]
            selection = report(
                snapshot,
                result,
                request,
                tau_source,
                request.query,
                job.embed_seconds,
                started,
                ResponseBudget(self.settings),
                load_seconds,
                target=(rows, None),
            )
            return schemas.PoolSelection(
                **selection.model_dump(), pool=name, pool_version=snapshot.version
            )

        for position, result in zip(admitted, chosen, strict=True):
            results[position] = _job_result(
                functools.partial(answer, jobs[position], result, vectors[position])
            )
        return results

    def _batch_group(self, jobs: list[Job], vectors: list[np.ndarray]) -> list[Any]:
        """``select/batch`` requests of one pool and settings, each with its embeddings."""
        return [
            _job_result(
                functools.partial(
                    self.select_batch, job.payload[0], job.payload[1], rows, job.embed_seconds
                )
            )
            for job, rows in zip(jobs, vectors, strict=True)
        ]

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
            if snapshot.rows.model == PROVIDED:
                raise ApiError(
                    422,
                    "invalid_input",
                    f"pool {name!r} cannot be calibrated: its vectors are provided, so the "
                    "service cannot embed the outputs to score them; give every example a label",
                )
            scorer = self._output_similarity_scorer(outputs, self.embedder_for(snapshot.rows))
        return CalibrationPlan(snapshot, request, validation_rows, scorer)

    def _output_similarity_scorer(
        self, outputs: Sequence[str], embedder: Embedder
    ) -> selector.Scorer:
        """Output similarity of an unlabelled pool: the outputs are embedded as the scoring
        meets them (a held-out example's and its demonstrations'), not the whole pool's."""
        embedded: dict[int, np.ndarray] = {}

        def output_similarity(rows: np.ndarray, chosen: np.ndarray) -> float:
            missing = sorted((set(rows.tolist()) | set(chosen.ravel().tolist())) - set(embedded))
            if missing:
                vectors = embedder.embed([outputs[row] for row in missing])
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
        return calibration.model_dump(exclude_computed_fields=True)  # stored: epoch only


def _job_result(answer: Callable[[], T]) -> T | Exception:
    """``answer()``, or the exception that fails this job alone (a deferral to a heavy slot
    and a cancellation stop the whole batch)."""
    try:
        return answer()
    except (_Deferred, selector.SelectionCancelled):
        raise
    except Exception as exc:
        return exc


def target_points(request: schemas.TargetChoice) -> int:
    """The points of a request's target: texts or vectors (none counted for a target pool)."""
    vectors = request.query_embeddings or (
        [request.query_embedding] if request.query_embedding is not None else None
    )
    if vectors is None and request.target is not None:
        vectors = request.target.embeddings
    return len(target_texts(request)) if vectors is None else len(vectors)


def target_texts(request: schemas.TargetChoice) -> list[str]:
    """The texts a request embeds as its target: its query, queries or target texts (none
    for a target pool)."""
    if request.query is not None:
        return [request.query]
    if request.queries is not None:
        return request.queries
    if request.target is not None and request.target.texts is not None:
        return request.target.texts
    return []


def request_k(options: schemas.SelectionOptions) -> int:
    """The largest k a request asks for (auto-k: ``k_max``)."""
    return options.k_max or options.k or DEFAULT_K


def timed_out(seconds: float) -> ApiError:
    """503 ``timeout``: the request did not finish within its deadline."""
    return ApiError(
        503,
        "timeout",
        f"the request did not finish within {seconds:g} s (MMDSHOT_REQUEST_TIMEOUT_S); "
        "its work was stopped",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class ClientGone(Exception):
    """The client closed its connection before the answer; its work was cancelled."""


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
        "bias_constant": options.bias_constant,
        "complexity_constant": options.complexity_constant,
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


def public_load_error(message: str) -> str:
    """What ``/ready`` and every 503 say about a failed model load: never a filesystem path
    (the full message goes to the server log)."""
    if message.startswith("model path ") and message.endswith(" is not a folder"):
        return "the configured model path is not a folder"
    if "/" in message or "\\" in message:
        return "the embedding model failed to load; the server log says why"
    return message


class ResponseBudget:
    """The text one response may carry: each rendered prompt at most ``max_prompt_chars``, the
    prompts and examples of every result together at most ``max_response_chars``. Counted
    before anything is rendered, so an oversized answer costs no memory: 422
    ``response_too_large``."""

    def __init__(self, settings: Settings) -> None:
        self.max_prompt_chars = settings.max_prompt_chars
        self.max_response_chars = settings.max_response_chars
        self.used = 0

    def take(self, chars: int) -> None:
        self.used += chars
        if self.used > self.max_response_chars:
            raise ApiError(
                422,
                "response_too_large",
                f"the response would exceed {self.max_response_chars} characters of text "
                "(MMDSHOT_MAX_RESPONSE_CHARS): ask for fewer queries, a smaller k or a shorter "
                "template",
                {"max_response_chars": self.max_response_chars},
            )

    def take_prompt(self, chars: int) -> None:
        if chars > self.max_prompt_chars:
            raise ApiError(
                422,
                "response_too_large",
                f"the prompt would exceed {self.max_prompt_chars} characters "
                "(MMDSHOT_MAX_PROMPT_CHARS): ask for a smaller k or a shorter template",
                {"max_prompt_chars": self.max_prompt_chars, "prompt_chars": chars},
            )
        self.take(chars)


def query_template_for(options: schemas.SelectionOptions) -> str:
    """The request's query_template; when it left that unset, one that follows its template:
    the template's text up to ``{output}``, with ``{input}`` as ``{query}`` (``Tweet:
    {input}\nSentiment: {output}`` gives ``Tweet: {query}\nSentiment:``). The default when
    the template has no ``{input}`` before ``{output}``, or other fields there."""
    if "query_template" in options.model_fields_set or "template" not in options.model_fields_set:
        return options.query_template
    pieces: list[str] = []
    found_input = False
    for literal, name, spec, conversion in string.Formatter().parse(options.template):
        pieces.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:  # a literal only (escaped braces, or the end)
            continue
        if name == "output":
            break
        if name != "input" or spec or conversion:
            return options.query_template
        found_input = True
        pieces.append("{query}")
    else:
        return options.query_template
    return "".join(pieces).rstrip() if found_input else options.query_template


def render_prompt(
    snapshot: Snapshot | PoolRows,
    order: Sequence[int],
    options: schemas.SelectionOptions,
    query: str | None,
    budget: ResponseBudget,
) -> str:
    """The demonstrations in ``order`` through the template, then the query, if one. The
    templates hold bare field names only (:func:`schemas.template_parts`); the length is
    counted against ``budget`` before the text is built. ``snapshot`` may be bare rows (a
    prefix's stored examples)."""
    rows = snapshot.rows if isinstance(snapshot, Snapshot) else snapshot
    example_parts = schemas.template_parts(options.template, schemas.EXAMPLE_FIELDS)
    columns: dict[str, Sequence[str | None]] = {
        "id": rows.ids,
        "input": rows.inputs,
        "output": rows.outputs,
        "label": rows.labels,
    }
    blocks = [
        [
            (literal, None if name is None else columns[name][i] or "")
            for literal, name in example_parts
        ]
        for i in order
    ]
    if query is not None:
        query_parts = schemas.template_parts(query_template_for(options), schemas.QUERY_FIELDS)
        blocks.append([(literal, None if name is None else query) for literal, name in query_parts])
    chars = len(options.separator) * max(len(blocks) - 1, 0)
    chars += sum(len(literal) + len(value or "") for block in blocks for literal, value in block)
    budget.take_prompt(chars)
    return options.separator.join(
        "".join(literal + (value or "") for literal, value in block) for block in blocks
    )


def render_messages(
    snapshot: Snapshot | PoolRows,
    order: Sequence[int],
    options: schemas.SelectionOptions,
    query: str | None,
    budget: ResponseBudget,
) -> list[schemas.ChatMessage]:
    """The demonstrations in ``order`` as chat messages: a user message from the template's
    parts before ``{output}`` and an assistant message from ``{output}`` on (the output alone
    when the template has none), after ``options.system``, then the query through the query
    template; counted against ``budget`` like the prompt."""
    rows = snapshot.rows if isinstance(snapshot, Snapshot) else snapshot
    parts = schemas.template_parts(options.template, schemas.EXAMPLE_FIELDS)
    split = next((p for p, (_, name) in enumerate(parts) if name == "output"), None)
    asked, answered = (parts, []) if split is None else (parts[:split], parts[split:])
    if split is not None:  # the literal before {output} belongs to the question
        asked = [*asked, (parts[split][0], None)]
        answered = [("", "output"), *answered[1:]]
    columns: dict[str, Sequence[str | None]] = {
        "id": rows.ids,
        "input": rows.inputs,
        "output": rows.outputs,
        "label": rows.labels,
    }

    def fill(pieces: Sequence[tuple[str, str | None]], i: int) -> str:
        return "".join(
            literal + ("" if name is None else columns[name][i] or "") for literal, name in pieces
        ).strip()

    messages = (
        []
        if options.system is None
        else [schemas.ChatMessage(role="system", content=options.system)]
    )
    for i in order:
        answer = fill(answered, i) if split is not None else rows.outputs[i]
        messages.append(schemas.ChatMessage(role="user", content=fill(asked, i)))
        messages.append(schemas.ChatMessage(role="assistant", content=answer))
    if query is not None:
        query_parts = schemas.template_parts(query_template_for(options), schemas.QUERY_FIELDS)
        text = "".join(literal + ("" if name is None else query) for literal, name in query_parts)
        messages.append(schemas.ChatMessage(role="user", content=text.strip()))
    budget.take_prompt(sum(len(message.content) for message in messages))
    return messages


def _example_chars(rows: PoolRows, i: int) -> int:
    metadata = sum(len(str(key)) + len(str(value)) for key, value in rows.metadata[i].items())
    return (
        len(rows.ids[i])
        + len(rows.inputs[i])
        + len(rows.outputs[i])
        + len(rows.labels[i] or "")
        + metadata
    )


def _finite(result: selector.SelectionResult) -> None:
    """422 when the kernel under this tau gave an infinite or NaN MMD (a softmax median tau on
    nearly identical points), rather than a response that fails its own model."""
    numbers = [result.tau, result.mmd2, result.mmd, result.bias_bound, result.bound]
    for subset in result.subsets:
        numbers += [subset.mmd2, subset.mmd, subset.bias_bound, subset.bound]
    numbers += list(result.baselines.values())
    numbers += list((result.bounds_by_k or {}).values())
    numbers += list((result.target_label_distribution or {}).values())
    if not all(math.isfinite(float(number)) for number in numbers):
        raise ApiError(
            422,
            "invalid_input",
            f"the MMD under tau {result.tau:g} is not finite; give a larger tau",
            {"tau": result.tau if math.isfinite(result.tau) else None},
        )


def report(
    snapshot: Snapshot,
    result: selector.SelectionResult,
    options: schemas.SelectionOptions,
    tau_source: schemas.TauSource,
    query: str | None,
    embed_seconds: float,
    started: float,
    budget: ResponseBudget,
    load_seconds: float = 0.0,
    *,
    target: tuple[np.ndarray, Sequence[float] | None],
) -> schemas.Selection:
    """The response for one :class:`selector.SelectionResult`: 422 when its numbers are not
    finite or its text exceeds ``budget``; ``load_seconds`` loading the pool (before
    ``started``, counted in the total); ``target`` the points and weights it was for (the
    per-example scores, :mod:`app.scores`)."""
    _finite(result)
    scores = example_scores(snapshot.pool, result, *target)
    rows = snapshot.rows
    order = result.prompt_order if options.order == "relevance_last" else result.indices
    budget.take(sum(_example_chars(rows, i) for i in order))
    budget.take(sum(len(rows.ids[i]) for subset in result.subsets for i in subset.indices))
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
                similarity=scores[i].similarity,
                affinity=scores[i].affinity,
                contribution=scores[i].contribution,
            )
            for i in order
        ],
        prompt=render_prompt(snapshot, order, options, query, budget),
        messages=(
            render_messages(snapshot, order, options, query, budget)
            if options.format == "messages"
            else None
        ),
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
        baselines={
            name: schemas.BaselineScore(mmd=math.sqrt(max(mmd2, 0.0)), mmd2=mmd2)
            for name, mmd2 in result.baselines.items()
        },
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
            load_ms=1000.0 * load_seconds,
            embed_ms=1000.0 * embed_seconds,
            scan_ms=milliseconds.get("scan", 0.0),
            select_ms=milliseconds.get("select", 0.0),
            refine_ms=milliseconds.get("refine", 0.0),
            total_ms=1000.0 * (time.perf_counter() - started + load_seconds),
        ),
    )
