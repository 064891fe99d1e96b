"""Dynamic batching of query embeddings and selections, as an embedding server batches.

Requests that embed texts and then select (``select`` with one query, ``select/batch``) come
to the :class:`Batcher` of their embedder. A request's cached texts are looked up at once,
its other texts tokenised on the batcher's own tokenizer threads (never the model's), and it
joins the open batch of its *group*: requests of one pool with the same settings, which one
``selector.select_batch`` answers (different pools or settings form their own groups). A
batch is one task on the engine's executor: one forward (or a few, length-sorted, bounded by
``max_batch`` texts and ``max_tokens`` tokens) for every text of its requests, then the
group's selection in one call.

When it is sent to the executor:

- at once, when this batcher has nothing else in flight: a lone request waits for nothing;
- otherwise after ``window_s`` (a few ms), so that requests arriving together share it, or as
  soon as it is full (``max_batch`` texts or ``max_tokens`` tokens).

Until a worker starts it, a batch still takes requests of its group, so batches grow while
the machine is busy. Queueing stays bounded: each batch is one executor task, refused with
429 (``overloaded``, ``Retry-After``) when its lane's queue is full, and a full batch takes
no one more. Every request keeps its own deadline and its client's disconnect: a batch whose
requests have all given up is dropped or stopped at its next step boundary.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from selector.embedding import CachedEmbedder, Embedder, TokenizingEmbedder, length_order

if TYPE_CHECKING:
    from app.engine import FairExecutor, Task

GroupRunner = Callable[[list["Job"], list[np.ndarray]], list[Any]]
"""Answers a group's jobs from their vectors (one ``(len(job.texts), d)`` array each): one
result per job, or the exception that job fails with (the others still answer)."""

TOKENIZER_THREADS = 2


@dataclass(eq=False)
class Job:
    """One request in a batch: its texts, its group and what its group's runner needs."""

    key: Hashable
    texts: list[str]
    payload: Any
    deadline: float
    vectors: np.ndarray = field(init=False)
    """``(len(texts), d)``: cached rows filled at submission, the rest by the forward."""
    missing: dict[str, list[int]] = field(default_factory=dict)
    """Texts not cached -> their rows."""
    tokens: list[np.ndarray] | None = None
    """The token ids of :attr:`missing`'s texts, in its order (None: not a tokenizing
    embedder)."""
    future: asyncio.Future[Any] | None = None
    abandoned: bool = False
    batch: Batch | None = None
    embed_seconds: float = 0.0
    """Seconds its batch spent embedding (the forwards, shared by its jobs)."""

    @property
    def size(self) -> int:
        return len(self.missing)

    @property
    def token_count(self) -> int:
        if self.tokens is None:
            return sum(max(1, len(text) // 4) for text in self.missing)
        return sum(len(row) for row in self.tokens)


@dataclass(eq=False)
class Batch:
    """The jobs of one group sent as one executor task."""

    key: Hashable
    runner: GroupRunner
    jobs: list[Job] = field(default_factory=list)
    texts: int = 0
    tokens: int = 0
    started: bool = False
    closed: bool = False
    """Takes no more jobs: full, started, or dropped."""
    task: Task | None = None
    timer: asyncio.TimerHandle | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Batcher:
    """Batches the requests of one embedder (see the module's docstring). ``cache`` is the
    query cache in front of ``embedder`` (rows it holds are not embedded again)."""

    def __init__(
        self,
        embedder: Embedder,
        executor: FairExecutor,
        *,
        cache: CachedEmbedder | None = None,
        lane: str = "read",
        window_s: float = 0.002,
        max_batch: int = 32,
        max_tokens: int = 4096,
        timeout_s: float = 30.0,
        timed_out: Callable[[float], BaseException] = lambda seconds: TimeoutError(seconds),
    ) -> None:
        self.embedder = embedder
        self.executor = executor
        self.cache = cache
        self.lane = lane
        self.window_s = window_s
        self.max_batch = max_batch
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.timed_out = timed_out
        self._open: dict[Hashable, Batch] = {}
        self._in_flight = 0
        """Batches sent to the executor and not yet finished."""
        self._tokenizers = ThreadPoolExecutor(TOKENIZER_THREADS, thread_name_prefix="tokenize")
        self.forwards = 0
        """Embedding forwards run (for tests and metrics)."""
        self.batches = 0
        """Batches run."""
        self.jobs = 0
        """Jobs answered through a batch."""
        self._counts = threading.Lock()

    # --- the request's side (event loop) ------------------------------------------------

    async def submit(
        self,
        key: Hashable,
        texts: Sequence[str],
        runner: GroupRunner,
        payload: Any = None,
        gone: Callable[[], Awaitable[object]] | None = None,
    ) -> Any:
        """Embed ``texts`` and answer with the group ``key``'s ``runner``, batched with the
        requests that come at the same time. Raises what the runner gave this job, 429 when
        the executor's queue is full, the deadline's error past ``timeout_s``, and
        :class:`~app.engine.ClientGone` when ``gone()`` completes first."""
        from app.engine import ClientGone

        loop = asyncio.get_running_loop()
        job = Job(key, list(texts), payload, time.monotonic() + self.timeout_s)
        job.future = loop.create_future()
        if self.cache is not None:
            job.vectors, job.missing = self.cache.lookup(job.texts)
        else:
            job.vectors = np.zeros((len(job.texts), self.embedder.dimension), dtype=np.float32)
            for row, text in enumerate(job.texts):
                job.missing.setdefault(text, []).append(row)
        if job.missing and isinstance(self.embedder, TokenizingEmbedder):
            job.tokens = await loop.run_in_executor(
                self._tokenizers, self.embedder.tokenize, list(job.missing)
            )
        self._join(job, runner)
        watcher = None if gone is None else asyncio.ensure_future(gone())
        waiting: set[asyncio.Future[Any]] = {job.future}
        if watcher is not None:
            waiting.add(watcher)
        try:
            remaining = max(0.0, job.deadline - time.monotonic())
            done, _ = await asyncio.wait(
                waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            self._abandon(job)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        if job.future in done:
            return job.future.result()
        self._abandon(job)
        if watcher is not None and watcher in done:
            raise ClientGone()
        raise self.timed_out(self.timeout_s)

    def _join(self, job: Job, runner: GroupRunner) -> None:
        """Put ``job`` in its group's open batch, or open one (sent at once when nothing
        else is in flight, else after the window)."""
        batch = self._open.get(job.key)
        if batch is not None:
            with batch.lock:
                fits = (
                    not batch.closed
                    and batch.texts + job.size <= self.max_batch
                    and batch.tokens + job.token_count <= self.max_tokens
                )
                if fits:
                    batch.jobs.append(job)
                    batch.texts += job.size
                    batch.tokens += job.token_count
                    job.batch = batch
                    full = self._full(batch)
                    batch.closed = full
            if fits:
                if full:
                    self._close(batch)
                    self._send(batch)
                return
            self._close(batch)  # no room: a new batch for the group
        batch = Batch(job.key, runner, [job], job.size, job.token_count)
        job.batch = batch
        if self._full(batch):
            batch.closed = True
        else:
            self._open[job.key] = batch
        if self._in_flight == 0 or batch.closed:
            self._send(batch)  # nothing else running: a lone request waits for nothing
        else:
            batch.timer = asyncio.get_running_loop().call_later(self.window_s, self._send, batch)

    def _full(self, batch: Batch) -> bool:
        return batch.texts >= self.max_batch or batch.tokens >= self.max_tokens

    def _send(self, batch: Batch) -> None:
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if batch.task is not None:
            return
        with batch.lock:
            live = [job for job in batch.jobs if not job.abandoned]
        if not live:
            self._close(batch)
            return
        deadline = max(job.deadline for job in live)
        loop = asyncio.get_running_loop()
        try:
            batch.task = self.executor.submit(
                self.lane, self._run, (batch,), max(0.0, deadline - time.monotonic())
            )
        except BaseException as exc:  # 429 (queue full) or 503 (stopping): for every job
            self._close(batch)
            for job in live:
                _settle(job, exc=exc)
            return
        self._in_flight += 1
        future: asyncio.Future[Any] = asyncio.wrap_future(batch.task.future, loop=loop)
        future.add_done_callback(lambda done: self._finished(batch, done))

    def _close(self, batch: Batch) -> None:
        with batch.lock:
            batch.closed = True
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]

    def _finished(self, batch: Batch, done: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        self._close(batch)
        if done.cancelled():
            from app.errors import ApiError

            error: BaseException = ApiError(
                503, "shutting_down", "the service is stopping; retry elsewhere"
            )
            for job in batch.jobs:
                _settle(job, exc=error)
            return
        exc = done.exception()
        if exc is not None:
            from selector import SelectionCancelled

            if isinstance(exc, SelectionCancelled):
                exc = self.timed_out(self.timeout_s)
            for job in batch.jobs:
                _settle(job, exc=exc)
        else:
            for job, result in zip(batch.jobs, done.result(), strict=True):
                if isinstance(result, BaseException):
                    _settle(job, exc=result)
                else:
                    _settle(job, result=result)
        # A worker is free: batches that gathered during this one go now, not at the window.
        for waiting in list(self._open.values()):
            if waiting.task is None and self._in_flight < self.executor.workers:
                self._send(waiting)

    def _abandon(self, job: Job) -> None:
        """The job's caller gave up: its batch is dropped (not sent yet) or stopped at its
        next step boundary (running) once every job in it has. Its future is cancelled, so
        the batch's later answer or error is dropped, never left unread on the loop."""
        job.abandoned = True
        if job.future is not None and not job.future.done():
            job.future.cancel()
        batch = job.batch
        if batch is None:
            return
        with batch.lock:
            if not all(other.abandoned for other in batch.jobs):
                return
        if batch.task is None:
            if batch.timer is not None:
                batch.timer.cancel()
                batch.timer = None
            self._close(batch)
        else:
            self.executor.cancel(batch.task)

    # --- the worker's side ----------------------------------------------------------------

    def _run(self, batch: Batch) -> list[Any]:
        """The executor task: the forwards of every missing text, then the group's runner."""
        with batch.lock:
            batch.started = batch.closed = True
            jobs = list(batch.jobs)
        self._embed(jobs)
        results = batch.runner(jobs, [job.vectors for job in jobs])
        with self._counts:
            self.batches += 1
            self.jobs += len(jobs)
        return results

    def _embed(self, jobs: list[Job]) -> None:
        """Fill every job's missing rows: each distinct text once, length-sorted forwards of
        at most ``max_batch`` texts and ``max_tokens`` tokens."""
        texts: list[str] = []
        tokens: list[np.ndarray] = []
        seen: dict[str, int] = {}
        for job in jobs:
            for position, text in enumerate(job.missing):
                if text not in seen:
                    seen[text] = len(texts)
                    texts.append(text)
                    if job.tokens is not None:
                        tokens.append(job.tokens[position])
        if not texts:
            return
        from app.engine import checkpoint

        checkpoint()
        started = time.perf_counter()
        vectors = np.zeros((len(texts), self.embedder.dimension), dtype=np.float32)
        if isinstance(self.embedder, TokenizingEmbedder) and len(tokens) == len(texts):
            for rows in _chunks(tokens, self.max_batch, self.max_tokens):
                vectors[rows] = self.embedder.embed_tokens([tokens[row] for row in rows])
                with self._counts:
                    self.forwards += 1
        else:
            vectors[:] = self.embedder.embed(texts)
            with self._counts:
                self.forwards += 1
        if self.cache is not None:
            self.cache.remember(texts, vectors)
        seconds = time.perf_counter() - started
        for job in jobs:
            job.embed_seconds = seconds
            for text, rows in job.missing.items():
                job.vectors[rows] = vectors[seen[text]]

    def close(self) -> None:
        self._tokenizers.shutdown(wait=False, cancel_futures=True)


def _chunks(tokens: Sequence[np.ndarray], max_batch: int, max_tokens: int) -> list[list[int]]:
    """Length-sorted runs of rows, each at most ``max_batch`` rows and, padded to its
    longest, ``max_tokens`` tokens (a longer text gets a run of its own)."""
    runs: list[list[int]] = []
    run: list[int] = []
    for row in length_order(tokens):
        width = len(tokens[row])  # the longest so far: rows come sorted
        if run and (len(run) >= max_batch or (len(run) + 1) * width > max_tokens):
            runs.append(run)
            run = []
        run.append(row)
    if run:
        runs.append(run)
    return runs


def _settle(job: Job, result: Any = None, exc: BaseException | None = None) -> None:
    future = job.future
    if future is None or future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


__all__ = ["Batch", "Batcher", "GroupRunner", "Job"]
