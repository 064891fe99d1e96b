"""Dynamic batching (app/batching.py): concurrent selections share forwards and one
``select_batch``, results equal the same requests sent alone, a lone request does not wait
for the window, and the queue stays bounded (429 with Retry-After)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.batching import Batcher, Job, _chunks, _settle
from app.engine import FairExecutor
from app.errors import ApiError
from selector import HashingEmbedder
from tests.app.conftest import Server, assert_error
from tests.app.test_load import fill, metric

QUERIES = [
    f"is the {topic} ride {mood} today, friend number {n}?"
    for n, (topic, mood) in enumerate(
        (topic, mood)
        for topic in ("cars", "trains", "boats", "planes")
        for mood in ("good", "bad", "calm", "rough")
    )
]


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, counting forwards and able to hold one until released."""

    def __init__(self) -> None:
        super().__init__(16)
        self.forward_sizes: list[int] = []
        self.hold = threading.Event()
        self.hold.set()

    def embed_tokens(self, tokens):  # type: ignore[no-untyped-def]
        self.hold.wait(10)
        self.forward_sizes.append(len(tokens))
        return super().embed_tokens(tokens)


def echo(jobs: list[Job], vectors: list[np.ndarray]) -> list[Any]:
    """A group runner that answers each job with its key, its vectors and its batch's size."""
    return [(job.key, rows, len(jobs)) for job, rows in zip(jobs, vectors, strict=True)]


@pytest.fixture
def executor() -> Any:
    running = FairExecutor(2, {"read": 16, "write": 16})
    yield running
    running.shutdown()


def test_concurrent_jobs_share_a_forward_by_group(executor: FairExecutor) -> None:
    embedder = CountingEmbedder()
    batcher = Batcher(embedder, executor, window_s=0.15, max_batch=64)

    async def scenario() -> list[Any]:
        embedder.hold.clear()  # the first batch holds the model while the others arrive
        first = asyncio.ensure_future(batcher.submit("a", ["held"], echo))
        await asyncio.sleep(0.05)
        others = [
            batcher.submit("a" if n % 2 else "b", [QUERIES[n]], echo) for n in range(len(QUERIES))
        ]
        gathered = asyncio.ensure_future(asyncio.gather(*others))
        await asyncio.sleep(0.4)
        embedder.hold.set()
        return [await first, *(await gathered)]

    answers = asyncio.run(scenario())
    batcher.close()
    expected = HashingEmbedder(16).embed(["held", *QUERIES])
    for (key, rows, _size), n, vector in zip(answers, range(-1, 16), expected, strict=True):
        assert key == ("a" if n == -1 or n % 2 else "b")
        np.testing.assert_allclose(rows[0], vector, atol=1e-6)
    # The held one alone, then one batch per group (a and b): three forwards for 17 jobs.
    assert sorted(embedder.forward_sizes) == [1, 8, 8]
    assert sorted(size for _key, _rows, size in answers[1:]) == [8] * 16
    assert batcher.forwards == 3 and batcher.batches == 3 and batcher.jobs == 17


def test_a_lone_job_goes_at_once_and_the_next_within_the_window(
    executor: FairExecutor,
) -> None:
    embedder = CountingEmbedder()
    window = 0.3
    batcher = Batcher(embedder, executor, window_s=window)

    async def scenario() -> tuple[float, float]:
        started = time.perf_counter()
        await batcher.submit("a", ["alone"], echo)
        lone = time.perf_counter() - started
        embedder.hold.clear()
        running = asyncio.ensure_future(batcher.submit("a", ["running"], echo))
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        waiting = asyncio.ensure_future(batcher.submit("b", ["waiting"], echo))
        await asyncio.sleep(window / 2)
        embedder.hold.set()  # the worker frees: the waiting batch goes before its window
        await waiting
        freed = time.perf_counter() - started
        await running
        return lone, freed

    lone, freed = asyncio.run(scenario())
    batcher.close()
    assert lone < window / 3  # no window paid when nothing else runs
    assert freed < window  # sent when a worker freed, not at the end of its window


def test_a_full_batch_goes_before_its_window(executor: FairExecutor) -> None:
    embedder = CountingEmbedder()
    batcher = Batcher(embedder, executor, window_s=5.0, max_batch=4)

    async def scenario() -> float:
        embedder.hold.clear()
        running = asyncio.ensure_future(batcher.submit("x", ["running"], echo))
        await asyncio.sleep(0.02)
        started = time.perf_counter()
        four = asyncio.gather(*(batcher.submit("a", [text], echo) for text in QUERIES[:4]))
        await asyncio.sleep(0.05)
        embedder.hold.set()
        await four
        await running
        return time.perf_counter() - started

    assert asyncio.run(scenario()) < 2.0
    batcher.close()
    assert sorted(embedder.forward_sizes) == [1, 4]


def test_chunks_are_length_sorted_and_bounded() -> None:
    tokens = [np.zeros(length, dtype=np.int64) for length in (5, 1, 9, 3, 3, 40)]
    runs = _chunks(tokens, max_batch=2, max_tokens=20)
    assert runs == [[1, 3], [4, 0], [2], [5]]
    assert _chunks(tokens, max_batch=10, max_tokens=1000) == [[1, 3, 4, 0, 2, 5]]


def test_an_abandoned_job_keeps_no_unread_error() -> None:
    """A caller that gave up (timeout, disconnect) leaves a cancelled future: the error its
    batch ends with later is dropped, not stored where no one reads it (asyncio logs such
    futures as "exception was never retrieved")."""
    executor = FairExecutor(1, {"read": 4, "write": 4})
    batcher = Batcher(CountingEmbedder(), executor, window_s=0.01)

    async def scenario() -> asyncio.Future[Any]:
        job = Job("a", ["text"], None, time.monotonic())
        job.future = asyncio.get_running_loop().create_future()
        batcher._abandon(job)
        _settle(job, exc=RuntimeError("the batch's error"))
        return job.future

    future = asyncio.run(scenario())
    batcher.close()
    executor.shutdown()
    assert future.cancelled()


def test_a_full_executor_queue_refuses_the_batch_with_429() -> None:
    narrow = FairExecutor(1, {"read": 0, "write": 0})
    embedder = CountingEmbedder()
    batcher = Batcher(embedder, narrow, window_s=0.01)

    async def scenario() -> BaseException | None:
        embedder.hold.clear()
        running = asyncio.ensure_future(batcher.submit("a", ["running"], echo))
        await asyncio.sleep(0.02)
        try:
            await batcher.submit("b", ["refused"], echo)
        except ApiError as exc:
            refused: BaseException | None = exc
        else:
            refused = None
        embedder.hold.set()
        await running
        return refused

    refused = asyncio.run(scenario())
    batcher.close()
    narrow.shutdown()
    assert isinstance(refused, ApiError) and refused.status == 429
    assert refused.headers == {"Retry-After": "1"}


# --- over real HTTP -----------------------------------------------------------------------


def batch_counts(client: httpx.Client) -> tuple[float, float]:
    return metric(client, "mmdshot_batch_forwards_total"), metric(
        client, "mmdshot_batch_jobs_total"
    )


def warm_up(client: httpx.Client) -> None:
    """Load the pool (a pool not loaded yet is selected on without batching)."""
    response = client.post("/v1/pools/p/select", json={"query": "warm up", "k": 2})
    assert response.status_code == 200, response.text


def concurrent(client: httpx.Client, path: str, bodies: list[dict[str, Any]]) -> list[Any]:
    barrier = threading.Barrier(len(bodies))

    def one(body: dict[str, Any]) -> Any:
        barrier.wait()
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(len(bodies)) as callers:
        return list(callers.map(one, bodies))


def same_selection(grouped: dict[str, Any], alone: dict[str, Any], tolerance: float = 1e-6) -> None:
    assert [e["id"] for e in grouped["examples"]] == [e["id"] for e in alone["examples"]]
    assert grouped["mmd2"] == pytest.approx(alone["mmd2"], abs=tolerance)


def fill_tweets(client: httpx.Client, name: str, tweets: list[Any]) -> None:
    assert client.post("/v1/pools", json={"name": name}).status_code == 201
    examples = [
        {"id": f"t{n}", "input": tweet.text, "output": tweet.label, "label": tweet.label}
        for n, tweet in enumerate(tweets)
    ]
    response = client.post(f"/v1/pools/{name}/examples", json={"examples": examples})
    assert response.status_code == 200, response.text


@pytest.mark.slow
def test_16_concurrent_minilm_selections_share_forwards_and_equal_lone_ones(
    tmp_path: Path,
) -> None:
    from bench.data import split_tweets

    pool, held = split_tweets(300, 16)
    data = tmp_path / "data"
    server = Server(data, embedder="minilm", batch_window_ms="20").start()
    bodies = [{"query": tweet.text, "k": 8} for tweet in held]
    try:
        with server.client() as client:
            fill_tweets(client, "p", pool)
            warm_up(client)
            forwards, jobs = batch_counts(client)
            grouped = concurrent(client, "/v1/pools/p/select", bodies)
            forwards_after, jobs_after = batch_counts(client)
            assert jobs_after - jobs == 16
            assert forwards_after - forwards < 16
            # Each request again alone (its query cached: the same vector), one select each.
            for body, together in zip(bodies, grouped, strict=True):
                response = client.post("/v1/pools/p/select", json=body)
                assert response.status_code == 200, response.text
                same_selection(together, response.json())
    finally:
        server.stop()
    # A fresh server (an empty query cache): each request alone, in a forward of its own.
    server = Server(data, embedder="minilm", ready_after_load="true").start()
    try:
        with server.client() as client:
            for body, together in zip(bodies, grouped, strict=True):
                response = client.post("/v1/pools/p/select", json=body)
                assert response.status_code == 200, response.text
                # An unpadded forward rounds the query's vector differently (~1e-7).
                same_selection(together, response.json(), tolerance=1e-5)
            assert batch_counts(client)[0] == 16  # one forward each
    finally:
        server.stop()


def test_concurrent_select_batch_requests_share_forwards(tmp_path: Path) -> None:
    server = Server(tmp_path, batch_window_ms="20").start()
    bodies = [{"queries": QUERIES[n : n + 4], "k": 3} for n in range(0, 16, 4)] * 2
    try:
        with server.client() as client:
            fill(client, "p", 200)
            warm_up(client)
            forwards, jobs = batch_counts(client)
            grouped = concurrent(client, "/v1/pools/p/select/batch", bodies)
            forwards_after, jobs_after = batch_counts(client)
            assert jobs_after - jobs == 8 and forwards_after - forwards < 8
            for body, together in zip(bodies, grouped, strict=True):
                alone = client.post("/v1/pools/p/select/batch", json=body).json()
                for one, other in zip(together["results"], alone["results"], strict=True):
                    same_selection(one, other)
            # Different settings: groups of their own, answers of their own settings.
            mixed = concurrent(
                client, "/v1/pools/p/select", [{"query": "the cars", "k": k} for k in (2, 5)]
            )
            assert [len(answer["examples"]) for answer in mixed] == [2, 5]
    finally:
        server.stop()


def test_a_lone_request_does_not_wait_for_the_window(tmp_path: Path) -> None:
    server = Server(tmp_path, batch_window_ms="1000").start()
    try:
        with server.client() as client:
            fill(client, "p", 200)
            warm_up(client)
            seconds = []
            for query in QUERIES[:5]:
                started = time.perf_counter()
                response = client.post("/v1/pools/p/select", json={"query": query, "k": 4})
                seconds.append(time.perf_counter() - started)
                assert response.status_code == 200
            assert statistics.median(seconds) < 0.25, seconds  # far below the 1 s window
    finally:
        server.stop()


def test_single_query_selections_beyond_the_queue_answer_429(tmp_path: Path) -> None:
    server = Server(tmp_path, compute_workers="1", compute_queue="0").start()
    try:
        with server.client() as client:
            fill(client, "p", 2000)
            warm_up(client)
            # A batch of 256 queries holds the one compute thread for seconds; single queries
            # sent meanwhile find the queue (of 0) full. Probing until the batch ends keeps the
            # test free of a guess at how long it takes.
            heavy = {"queries": [f"the trains felt negative {i}" for i in range(256)], "k": 64}
            with ThreadPoolExecutor(1) as background:
                running = background.submit(client.post, "/v1/pools/p/select/batch", json=heavy)
                time.sleep(0.5)  # the batch takes the thread first
                refusals = []
                while not running.done() and not refusals:
                    answer = client.post("/v1/pools/p/select", json={"query": "cars", "k": 4})
                    assert answer.status_code in (200, 429), answer.text
                    if answer.status_code == 429:
                        refusals.append(answer)
                assert running.result().status_code == 200, running.result().text
                assert refusals, "the batch ended before a single query was refused"
                refused = refusals[0]
                assert_error(refused, 429, "overloaded")
                assert refused.headers["Retry-After"] == "1"
                assert running.result().status_code == 200
    finally:
        server.stop()
