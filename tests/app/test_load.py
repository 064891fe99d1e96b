"""Bounded work under load, over real HTTP: the request deadline, disconnect cancellation, the
cost budget, fair read/write queues, per-pool loading and the event loop kept free."""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from pydantic import ValidationError

from app.config import Settings
from app.cost import selection_cost
from app.engine import Engine, FairExecutor, Task, checkpoint, lane_shares
from app.errors import ApiError
from app.main import create_app
from app.schemas import ExampleIn
from app.store import PoolRows
from tests.app.conftest import (
    LABELS,
    NDJSON,
    Server,
    assert_error,
    free_port,
    make_examples,
)

HEAVY_POOL = 4_000
# A valid selection that runs for seconds on a 4,000-example hashed pool (a beam of 16 to
# k = 256; 11 s on a busy 2-core machine), and its cost.
HEAVY = {"query": "the trains felt negative", "k": 256, "num_subsets": 16}
HEAVY_COST = selection_cost(
    pool=HEAVY_POOL, problems=1, target_points=1, k=256, num_subsets=16, chars=24
).total
BUDGET = HEAVY_COST + 1_000  # the heavy request is a maximal-cost one under this budget
LIGHT = {"query": "the cars felt positive", "k": 4}
# Four heavy selections in one batch, for the tests that stop it (a deadline, a disconnect):
# at least four times the heavy one's run, whatever the machine, while the stop bounds the
# test's time. Under a budget of its own.
HEAVIER = {
    "queries": [f"the trains felt negative {i}" for i in range(4)],
    "k": 256,
    "num_subsets": 16,
}
HEAVIER_BUDGET = 8 * BUDGET


def fill(client: httpx.Client, name: str, count: int, batch: int = 1000) -> None:
    assert client.post("/v1/pools", json={"name": name}).status_code == 201
    for start in range(0, count, batch):
        examples = make_examples(min(batch, count - start), start)
        response = client.post(f"/v1/pools/{name}/examples", json={"examples": examples})
        assert response.status_code == 200, response.text


def metric(client: httpx.Client, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="module")
def heavy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding ``heavy`` (4,000 examples), filled once for the module."""
    data_dir = tmp_path_factory.mktemp("heavy")
    server = Server(data_dir, max_request_cost=str(BUDGET)).start()
    try:
        with server.client() as client:
            fill(client, "heavy", HEAVY_POOL)
    finally:
        server.stop()
    return data_dir


def serve(data_dir: Path, budget: int = BUDGET, **settings: str) -> Server:
    return Server(data_dir, max_request_cost=str(budget), **settings).start()


# --- the executor ----------------------------------------------------------------------------


def lane_order(shares: dict[str, float] | None, each: int) -> list[str]:
    """The lanes in the order one worker ran ``each`` queued tasks of 20 ms per lane (reads
    queued first)."""
    executor = FairExecutor(workers=1, queues={"read": each, "write": each}, shares=shares)
    release = threading.Event()
    order: list[str] = []

    def work(lane: str) -> None:
        order.append(lane)
        time.sleep(0.02)

    try:
        blocker = executor.submit("read", release.wait, (), 60)
        time.sleep(0.1)  # the one worker is busy: what follows waits in the queues
        tasks = [executor.submit("read", work, ("read",), 60) for _ in range(each)]
        with pytest.raises(ApiError) as refused:
            executor.submit("read", work, ("read",), 60)
        assert refused.value.status == 429
        assert refused.value.headers == {"Retry-After": "1"}
        tasks += [executor.submit("write", work, ("write",), 60) for _ in range(each)]
        release.set()
        for task in [blocker, *tasks]:
            task.future.result(timeout=30)
    finally:
        executor.shutdown()
    return order


def test_lanes_share_the_worker_time_and_refuse_when_full_with_retry_after() -> None:
    # Equal shares: the reads were queued before any write, yet of the first 12 tasks (both
    # lanes still waiting) about half were writes.
    assert 5 <= lane_order(None, 12)[:12].count("write") <= 9
    # A read share of 0.75: while both lanes wait, about one write runs for three reads
    # (and a little more at first: the blocking read's time counts against the reads).
    order = lane_order(lane_shares(0.75), 12)
    assert 3 <= order[:16].count("write") <= 7, order
    assert order.count("write") == 12  # the rest ran once the reads were done
    # The default (MMDSHOT_READ_SHARE 0.9): about one write for nine reads.
    settings = Settings(data_dir=Path("unused"), embedder="hashing")
    assert lane_shares(settings.read_share) == pytest.approx({"read": 0.9, "write": 0.1})
    order = lane_order(lane_shares(settings.read_share), 20)
    assert 1 <= order[:20].count("write") <= 4, order
    assert order.count("write") == 20
    for refused in (0.0, 1.0):
        with pytest.raises(ValidationError):
            Settings(read_share=refused)


def test_heavy_tasks_leave_a_worker_for_ordinary_ones() -> None:
    executor = FairExecutor(workers=2, queues={"read": 8, "write": 8})
    release = threading.Event()

    def heavy() -> bool:
        executor.claim_heavy()
        return release.wait(30)

    try:
        first = executor.submit("read", heavy, (), 60)
        second = executor.submit("read", heavy, (), 60)
        time.sleep(0.2)
        ordinary = executor.submit("read", lambda: "done", (), 60)
        assert ordinary.future.result(timeout=5) == "done"
        assert not first.future.done() and not second.future.done()
        release.set()
        assert first.future.result(timeout=10) and second.future.result(timeout=10)
    finally:
        executor.shutdown()


def test_a_stopped_task_ends_at_its_next_step_boundary() -> None:
    executor = FairExecutor(workers=1, queues={"read": 1, "write": 1})
    steps: list[int] = []

    def steps_forever() -> None:
        for step in range(10_000):
            checkpoint()
            steps.append(step)
            time.sleep(0.01)

    try:
        task: Task = executor.submit("read", steps_forever, (), 60)
        time.sleep(0.2)
        executor.cancel(task)
        with pytest.raises(Exception, match="stopped"):
            task.future.result(timeout=5)
        taken = len(steps)
        time.sleep(0.1)
        assert len(steps) == taken < 100
        # The worker is free again.
        assert executor.submit("read", lambda: 7, (), 60).future.result(timeout=5) == 7
    finally:
        executor.shutdown()


# --- the deadline, disconnects and the cost budget over HTTP ----------------------------------


def test_deadline_answers_503_with_retry_after_and_frees_the_worker(heavy_dir: Path) -> None:
    server = serve(heavy_dir, HEAVIER_BUDGET, compute_workers="1", request_timeout_s="1")
    try:
        with server.client() as client:
            started = time.monotonic()
            response = client.post("/v1/pools/heavy/select/batch", json=HEAVIER)
            assert_error(response, 503, "timeout")
            assert response.headers["Retry-After"] == "1"
            assert time.monotonic() - started < 4
            started = time.monotonic()
            assert client.post("/v1/pools/heavy/select", json=LIGHT).status_code == 200
            assert time.monotonic() - started < 3  # the heavy one no longer holds the worker
            assert metric(client, 'mmdshot_compute_stopped_total{reason="timeout"}') == 1
    finally:
        server.stop()


def test_client_disconnect_cancels_running_work(heavy_dir: Path) -> None:
    server = serve(heavy_dir, HEAVIER_BUDGET, compute_workers="1", request_timeout_s="120")
    try:
        with server.client() as client:
            with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.5) as impatient:
                impatient.post(f"{server.url}/v1/pools/heavy/select/batch", json=HEAVIER)
            started = time.monotonic()
            assert client.post("/v1/pools/heavy/select", json=LIGHT).status_code == 200
            assert time.monotonic() - started < 3  # it would wait ~10 s behind the heavy one
            assert metric(client, 'mmdshot_compute_stopped_total{reason="disconnect"}') == 1
    finally:
        server.stop()


def test_client_disconnect_drops_queued_work(heavy_dir: Path) -> None:
    server = serve(heavy_dir, compute_workers="1", request_timeout_s="120")
    try:
        with server.client() as client, ThreadPoolExecutor(1) as background:
            # Timed against this machine: the heavy selection alone took under a second on a
            # fast machine and 11 s on a busy one, so fixed waits either left it unfinished
            # or let it end before the light request had timed out behind it.
            started = time.monotonic()
            assert client.post("/v1/pools/heavy/select", json=HEAVY, timeout=120).is_success
            wait = (time.monotonic() - started) / 4
            running = background.submit(
                lambda: client.post("/v1/pools/heavy/select", json=HEAVY, timeout=120)
            )
            time.sleep(wait)  # the heavy one runs on the only worker; the light one queues
            with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=wait) as impatient:
                impatient.post(f"{server.url}/v1/pools/heavy/select", json=LIGHT)
            time.sleep(0.3)
            assert metric(client, 'mmdshot_compute_stopped_total{reason="disconnect"}') == 1
            assert running.result().status_code == 200
    finally:
        server.stop()


def test_cost_budget_refuses_before_work_and_is_in_info(heavy_dir: Path) -> None:
    server = serve(heavy_dir)
    try:
        with server.client() as client:
            limits = client.get("/v1/info").json()["limits"]
            assert limits["max_request_cost"] == BUDGET
            assert limits["request_timeout_s"] == 30
            started = time.monotonic()
            response = client.post(
                "/v1/pools/heavy/select/batch",
                json={"queries": ["a", "b"], "k": 256, "num_subsets": 16},
            )
            assert_error(response, 422, "too_costly")
            assert f"{BUDGET:,}" in response.json()["error"]["message"]
            detail = response.json()["error"]["detail"]
            assert detail["budget"] == BUDGET and detail["cost"] > BUDGET
            assert time.monotonic() - started < 2  # refused before any work
            # One under the budget runs; the cost counts inline characters too.
            candidates = [{"input": "x" * 2_000} for _ in range(50)]
            inline = {"query": "q", "k": 2, "candidates": candidates}
            assert client.post("/v1/select", json=inline).status_code == 200
            inline["candidates"] = candidates * 10  # 500 x 2,000 characters
            assert_error(client.post("/v1/select", json=inline), 422, "too_costly")
    finally:
        server.stop()


def test_two_maximal_cost_requests_leave_a_normal_selection_its_deadline(
    heavy_dir: Path,
) -> None:
    timeout = 20.0
    server = serve(heavy_dir, compute_workers="2", request_timeout_s=str(timeout))
    try:
        with server.client() as client, ThreadPoolExecutor(2) as background:
            heavy = [
                background.submit(
                    lambda: client.post("/v1/pools/heavy/select", json=HEAVY, timeout=60)
                )
                for _ in range(2)
            ]
            time.sleep(0.5)
            latencies = []
            for attempt in range(3):
                started = time.monotonic()
                response = client.post("/v1/pools/heavy/select", json=LIGHT)
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200, response.text
                if attempt == 0:  # answered while the heavy ones still ran (each took 0.8 s
                    # alone on a fast machine: later answers may come after they end)
                    assert not all(future.done() for future in heavy)
            assert max(latencies) < 5 < timeout, latencies
            for future in heavy:
                # Each finished or was stopped at its deadline: nothing else.
                answer = future.result()
                assert answer.status_code in (200, 503), answer.text
                if answer.status_code == 503:
                    assert_error(answer, 503, "timeout")
    finally:
        server.stop()


# --- per-pool loading, load_ms, background load, READY_AFTER_LOAD ------------------------------


class InProcessServer:
    """The app on uvicorn in a thread of this process (so a test can slow the engine)."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while httpx.get(f"{self.url}/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.fixture
def slow_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """Make reading the pool ``slow`` take the given seconds."""
    delay = {"seconds": 0.0}
    original = Engine.read_pool

    def read_pool(self: Engine, name: str, since: PoolRows | None = None) -> PoolRows:
        if name == "slow":
            time.sleep(delay["seconds"])
        return original(self, name, since)

    monkeypatch.setattr(Engine, "read_pool", read_pool)
    yield lambda seconds: delay.__setitem__("seconds", seconds)


def hashing_settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, embedder="hashing", **extra)


def test_loading_one_pool_never_delays_another(
    tmp_path: Path, slow_pool: Callable[[float], None]
) -> None:
    with InProcessServer(hashing_settings(tmp_path)) as running:
        running.wait_ready()
        with httpx.Client(base_url=running.url, timeout=60) as client:
            fill(client, "fast", 60)
            fill(client, "slow", 60)
            first = client.post("/v1/pools/fast/select", json=LIGHT).json()["timings"]
            assert first["load_ms"] > 0  # the first selection loaded the pool ...
            again = client.post("/v1/pools/fast/select", json=LIGHT).json()["timings"]
            assert again["load_ms"] == 0  # ... the next found it loaded
            slow_pool(3.0)
            with ThreadPoolExecutor(1) as background:
                slow = background.submit(
                    lambda: client.post("/v1/pools/slow/select", json=LIGHT).json()
                )
                time.sleep(0.3)  # the slow pool is loading now
                fast_seconds = []
                for _ in range(3):
                    started = time.monotonic()
                    assert client.post("/v1/pools/fast/select", json=LIGHT).status_code == 200
                    fast_seconds.append(time.monotonic() - started)
                assert not slow.done()
                timings = slow.result()["timings"]
            assert max(fast_seconds) < 1.0, fast_seconds
            # The load is its own timing, not the scan's; the total counts it.
            assert timings["load_ms"] >= 3000 > timings["scan_ms"]
            assert timings["total_ms"] >= timings["load_ms"]


def test_selections_answer_from_the_previous_version_while_a_newer_one_loads(
    tmp_path: Path, slow_pool: Callable[[float], None]
) -> None:
    """A newer version loading, by the selection that found it (written by another replica
    of the store) or by the write itself: the selections meanwhile answer from the version
    before, at once."""
    with InProcessServer(hashing_settings(tmp_path)) as running:
        running.wait_ready()
        with httpx.Client(base_url=running.url, timeout=60) as client:
            fill(client, "slow", 60)
            before = client.post("/v1/pools/slow/select", json=LIGHT).json()["pool_version"]
            # Written through another engine on the same store, as another replica would:
            # this server learns of it from the store, at its next selection.
            replica = Engine(hashing_settings(tmp_path))
            try:
                replica.load_models()
                added = [ExampleIn(**make_examples(1, start=500)[0])]
                after = replica.upsert("slow", added).version
            finally:
                replica.close()
            assert after > before
            slow_pool(3.0)
            with ThreadPoolExecutor(1) as background:
                loading = background.submit(
                    lambda: client.post("/v1/pools/slow/select", json=LIGHT).json()
                )
                time.sleep(0.3)
                started = time.monotonic()
                stale = client.post("/v1/pools/slow/select", json=LIGHT).json()
                assert time.monotonic() - started < 1.0
                assert not loading.done()
                fresh = loading.result()
            assert stale["pool_version"] == before and stale["timings"]["load_ms"] == 0
            assert fresh["pool_version"] == after and fresh["timings"]["load_ms"] >= 3000
            # A write of this server brings the snapshot to its version itself.
            with ThreadPoolExecutor(1) as background:
                added_here = {"examples": make_examples(1, start=600)}
                writing = background.submit(
                    lambda: client.post("/v1/pools/slow/examples", json=added_here).json()
                )
                time.sleep(0.3)  # committed; the write is loading its version
                started = time.monotonic()
                stale = client.post("/v1/pools/slow/select", json=LIGHT).json()
                assert time.monotonic() - started < 1.0
                assert not writing.done()
                written = writing.result()["version"]
            assert stale["pool_version"] == after and stale["timings"]["load_ms"] == 0
            slow_pool(0.0)
            latest = client.post("/v1/pools/slow/select", json=LIGHT).json()
            assert latest["pool_version"] == written > after
            assert latest["timings"]["load_ms"] == 0  # the write loaded it


def test_ready_after_load_waits_for_the_stored_pools(
    tmp_path: Path, slow_pool: Callable[[float], None]
) -> None:
    with InProcessServer(hashing_settings(tmp_path)) as running:
        running.wait_ready()
        with httpx.Client(base_url=running.url, timeout=60) as client:
            fill(client, "slow", 60)
    slow_pool(2.0)
    settings = hashing_settings(tmp_path, ready_after_load=True)
    with (
        InProcessServer(settings) as running,
        httpx.Client(base_url=running.url, timeout=60) as client,
    ):
        time.sleep(0.5)
        waiting = client.get("/ready")
        assert waiting.status_code == 503
        assert waiting.headers["Retry-After"] == "1"
        state = waiting.json()
        assert state["model_loaded"] and not state["pools_loaded"]
        assert "loading the stored pools (0 of 1" in state["message"]
        running.wait_ready()
        assert client.get("/ready").json()["pools_loaded"]
        # Loaded in the background at start: the first selection pays nothing for it.
        timings = client.post("/v1/pools/slow/select", json=LIGHT).json()["timings"]
        assert timings["load_ms"] == 0


def test_without_ready_after_load_ready_does_not_wait(
    tmp_path: Path, slow_pool: Callable[[float], None]
) -> None:
    with InProcessServer(hashing_settings(tmp_path)) as running:
        running.wait_ready()
        with httpx.Client(base_url=running.url, timeout=60) as client:
            fill(client, "slow", 60)
    slow_pool(3.0)
    with InProcessServer(hashing_settings(tmp_path)) as running:
        started = time.monotonic()
        running.wait_ready()
        assert time.monotonic() - started < 2.5
        assert not httpx.get(f"{running.url}/ready").json()["pools_loaded"]


# --- reads and writes under load, and the event loop ------------------------------------------


def test_every_429_carries_retry_after(tmp_path: Path) -> None:
    server = Server(tmp_path, compute_workers="1", compute_queue="0", write_queue="0").start()
    try:
        with server.client() as client:
            fill(client, "p", 200)

            def select(_: int) -> httpx.Response:
                body = {"queries": [f"q{i}" for i in range(64)], "k": 32}
                return client.post("/v1/pools/p/select/batch", json=body)

            with ThreadPoolExecutor(6) as load:
                answers = list(load.map(select, range(12)))
            refused = [answer for answer in answers if answer.status_code == 429]
            assert refused, [answer.status_code for answer in answers]
            for answer in refused:
                assert_error(answer, 429, "overloaded")
                assert answer.headers["Retry-After"] == "1"
    finally:
        server.stop()


# A /health prober in a process of its own, as a kubelet is: standard library only, the
# collector off, so neither the test process's allocations (a full collection there took
# 40-120 ms) nor its upload thread's hold on that process's GIL count as the server's
# latency. Probes are due every 20 ms, each timed from when it was due (as wrk2 does): a
# stall of the server delays the probes that should have gone meanwhile too, so a 1 s stall
# counts as the 50 slow probes a steady prober would have met, not as one. It probes until a
# line arrives on stdin, then prints the latencies.
HEALTH_PROBER = r"""
import gc, http.client, json, select, sys, time
gc.disable()
connection = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=30)
def probe():
    connection.request("GET", "/health")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200, answer.status
probe()
print("probing", flush=True)
latencies = []
due = time.perf_counter()
while not select.select([sys.stdin], [], [], max(0.0, due - time.perf_counter()))[0]:
    probe()
    latencies.append(time.perf_counter() - due)
    due += 0.02
print(json.dumps(latencies), flush=True)
"""


def test_health_stays_fast_while_a_50_mb_import_uploads_and_parses(tmp_path: Path) -> None:
    """Issue 11: /health p99 under 100 ms while a 50 MB import is uploaded, then parsed,
    embedded and committed chunk by chunk (the first 10 s of the job)."""
    server = Server(tmp_path).start()
    try:
        with server.client() as client:
            assert client.post("/v1/pools", json={"name": "big"}).status_code == 201
            line = {"input": "x", "output": "filler " * 30, "label": "a"}
            lines = []
            for i in range(200_000):
                line["input"] = f"imported review {i} of cars: it felt fine"
                lines.append(json.dumps(line))
            body = ("\n".join(lines) + "\n").encode()
            assert len(body) > 50_000_000
            host, port = server.url.removeprefix("http://").split(":")
            prober = subprocess.Popen(
                [sys.executable, "-c", HEALTH_PROBER, host, port],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert prober.stdout is not None and prober.stdout.readline() == "probing\n"
                # Sent in blocks of 1 MiB, as a client streams a file (given the whole body,
                # httpcore copies what is left of it after every send).
                view = memoryview(body)
                blocks = (bytes(view[at : at + 2**20]) for at in range(0, len(body), 2**20))
                answer = client.post(
                    "/v1/pools/big/imports",
                    content=blocks,
                    headers={**NDJSON, "Content-Length": str(len(body))},
                    timeout=300,
                )
                assert answer.status_code == 202, answer.text
                job_id = answer.json()["id"]
                deadline = time.monotonic() + 60
                while (job := client.get(f"/v1/jobs/{job_id}").json())["done"] == 0:
                    assert job["status"] in ("queued", "running"), job
                    assert time.monotonic() < deadline, job
                    time.sleep(0.1)
                time.sleep(10)
                job = client.get(f"/v1/jobs/{job_id}").json()
                stdout, _ = prober.communicate("stop\n", timeout=30)
            finally:
                if prober.poll() is None:
                    prober.kill()
            assert prober.returncode == 0
            assert job["status"] == "running" and 0 < job["done"] < job["total"] == 200_000
            latencies = sorted(json.loads(stdout))
            assert len(latencies) > 200
            p99 = latencies[int(0.99 * len(latencies))]
            # 17-39 ms on the loaded 2-core development machine (docs/api.md "Bounded work");
            # the import body parsed on the event loop instead measured 683 ms.
            assert p99 < 0.1, (p99, statistics.median(latencies), latencies[-5:])
    finally:
        server.stop()


def test_no_async_route_calls_the_store() -> None:
    """A route that is a coroutine runs on the event loop: it may only await (the executor)."""
    import inspect

    from app.main import create_app

    service = create_app(Settings())
    for route in service.routes:
        endpoint = getattr(route, "endpoint", None)
        if endpoint is None or not inspect.iscoroutinefunction(endpoint):
            continue
        if endpoint.__module__ == "app.routes.imports":
            continue  # the import body streams to a spool (the jobs branch)
        source = inspect.getsource(endpoint)
        assert ".store." not in source, route.path  # a store call right on the loop
        for call in ("engine.delete_pool(", "engine.create_pool(", "engine.upsert("):
            assert f" {call}" not in source, route.path  # not through compute.write


def write_pool_rows(data_dir: Path, name: str, count: int, dimension: int = 64) -> None:
    """``count`` examples with random unit vectors written straight into the empty pool
    ``name`` of the SQLite store (seconds for 200,000, where embedding them through the API
    would take minutes), as version 2."""
    vectors = np.random.default_rng(0).standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = (
        (
            name,
            f"b-{i}",
            f"stored review {i}",
            LABELS[i % 3],
            LABELS[i % 3],
            "{}",
            f"{i:064x}",
            3,
            vectors[i].tobytes(),
            2,
        )
        for i in range(count)
    )
    with contextlib.closing(sqlite3.connect(data_dir / "mmdshot.sqlite3", timeout=30)) as db:
        # In transactions of 20,000 rows: the server's job worker polls the store meanwhile.
        while batch := list(itertools.islice(rows, 20_000)):
            with db:
                db.executemany(
                    "INSERT INTO examples (pool, id, input, output, label, metadata, "
                    "content_hash, token_count, embedding, changed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch,
                )
        with db:
            db.execute("UPDATE pools SET version = 2 WHERE name = ?", (name,))


def test_selections_on_one_pool_are_not_delayed_while_a_200k_pool_loads(tmp_path: Path) -> None:
    """A real pool of 200,000 examples (``b``) loading for its first selection: selections on
    ``a`` meanwhile answer about as fast as before and after."""
    # No prefilter index for b: the test is about its load, not an index build beside it.
    server = Server(tmp_path, index_above=str(10**6))
    try:
        with server.start().client() as client:
            fill(client, "a", 60)
            before = []
            for _ in range(10):  # also warms a's first selection up
                started = time.perf_counter()
                assert client.post("/v1/pools/a/select", json=LIGHT).status_code == 200
                before.append(time.perf_counter() - started)
            assert client.post("/v1/pools", json={"name": "b"}).status_code == 201
            write_pool_rows(tmp_path, "b", 200_000)
            during = []
            with ThreadPoolExecutor(1) as background, server.client() as other:
                loading = background.submit(other.post, "/v1/pools/b/select", json=LIGHT)
                while not loading.done():
                    started = time.perf_counter()
                    assert client.post("/v1/pools/a/select", json=LIGHT).status_code == 200
                    during.append(time.perf_counter() - started)
                loaded = loading.result().json()
            assert loaded["pool_version"] == 2 and loaded["timings"]["load_ms"] > 500
            assert client.get("/v1/pools/b").json()["size"] == 200_000
    finally:
        server.ensure_stopped()
    assert len(during) >= 5, during  # b's load took a while, and a answered meanwhile
    # A selection on a 60-example pool takes milliseconds; one waiting for b's load would
    # take about as long as the load (9.6 s once on the busy 2-core machine, where a's
    # selections meanwhile took a median 70 ms against 20 ms before, at most 0.43 s: the
    # load's CPU, not a wait; once 0.33 s beside a load of 1.6 s). A selection that waited
    # would wait for most of the load, and the loop above would then see only one or two.
    load_s = loaded["timings"]["load_ms"] / 1000
    assert max(during) < min(1.0, load_s / 2), (during, before, load_s)
    assert statistics.median(during) < 5 * statistics.median(before) + 0.05, (during, before)
