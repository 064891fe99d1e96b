"""A soak: selections under sustained load with writers upserting beside them.

One ``mmdshot serve`` (the real MiniLM model) over a pool of 10,000 real tweets; rounds of
60 s at concurrency 32 driving ``POST /v1/pools/tweets/select`` with wrk (as ``bench http``;
a Lua script rotates held-out tweets as queries and counts every status), while two writer
threads upsert new examples as fast as they are answered. Two such rounds in a row, between
two rounds without writers, whose mean is the baseline of the throughput ratio; a warm-up of
selections goes first and is not counted (the first minute after start measured up to 1.4x
slower than the next with the same load, which the writer rounds, run first, were charged
with). It reports each round's status counts, p50/p99 and throughput, and the server's RSS
at the start of the writer rounds and 30, 60 and 120 s in.
The quick mode (a few seconds, a small pool, the hashing embedder, a Python load loop) runs
in the test suite.
"""

from __future__ import annotations

import re
import shutil
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.config import Settings
from bench.embeddings import CACHE, sampled_tweet_embeddings
from bench.environment import save_result
from bench.http import POOL, run_wrk, select_target, start_server, write_pool
from selector.embedding import BUNDLED_MODEL_NAME

SIZE = 10_000
HELD = 200
CONCURRENCY = 32
WRITERS = 2
UPSERT_BATCH = 4
WARMUP_S = 15


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` in MB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def build(data_dir: Path, quick: bool) -> list[str]:
    """Write the pool into ``data_dir``; returns held-out query texts."""
    size = 300 if quick else SIZE
    if quick:
        texts = [f"synthetic example {i} about topic {i % 17}" for i in range(size + 20)]
        labels = [("negative", "neutral", "positive")[i % 3] for i in range(size)]
        vectors = np.random.default_rng(0).standard_normal((size, 64)).astype(np.float32)
        write_pool(data_dir, texts[:size], labels, vectors, "hashing-64")
        return texts[size:]
    tweets, vectors = sampled_tweet_embeddings(size + HELD, seed=0)
    rows = np.random.default_rng(1).permutation(len(tweets))
    pool, held = rows[HELD:], rows[:HELD]
    write_pool(
        data_dir,
        [tweets[i].text for i in pool],
        [tweets[i].label for i in pool],
        vectors[pool],
        BUNDLED_MODEL_NAME,
    )
    return [tweets[i].text for i in held]


class Writers:
    """``count`` threads upserting new examples until stopped; counts every status."""

    def __init__(self, url: str, texts: list[str], count: int, prefix: str) -> None:
        self.url, self.texts, self.prefix = url, texts, prefix
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._write, args=(n,)) for n in range(count)]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _write(self, writer: int) -> None:
        with httpx.Client(timeout=60) as client:
            n = 0
            while not self._stop.is_set():
                examples = []
                for _ in range(UPSERT_BATCH):
                    text = self.texts[n % len(self.texts)]
                    examples.append(
                        {
                            "id": f"{self.prefix}-w{writer}-{n}",
                            "input": f"{text} (soak write {self.prefix} {writer} {n})",
                            "output": "neutral",
                            "label": "neutral",
                        }
                    )
                    n += 1
                started = time.perf_counter()
                try:
                    status = str(
                        client.post(
                            f"{self.url}/v1/pools/{POOL}/examples", json={"examples": examples}
                        ).status_code
                    )
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self._lock:
                    self.statuses[status] += 1
                    self.latencies.append(time.perf_counter() - started)

    def report(self, seconds: float) -> dict[str, Any]:
        ok = self.statuses.get("200", 0)
        calls = sum(self.statuses.values())
        return {
            "calls": calls,
            "statuses": dict(self.statuses),
            "success_share": ok / calls if calls else 0.0,
            "p50_ms": 1e3 * statistics.median(self.latencies) if self.latencies else None,
            "per_s": ok / seconds,
        }


_STATUS_HOOKS = """
statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  for status, count in pairs(total) do
    io.write(string.format("STATUS %d %d\\n", status, count))
  end
  io.write(string.format("ERRORS %d\\n", summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""
"""Lua hooks that count each status over wrk's threads and print them, and the socket errors."""


def wrk_selections(url: str, queries: list[str], k: int, seconds: int) -> dict[str, Any]:
    """wrk at :data:`CONCURRENCY` for ``seconds``: statuses, p50/p99, 200s per second."""
    output, percentile = run_wrk(
        url, queries, select_target(k), CONCURRENCY, seconds, hooks=_STATUS_HOOKS
    )
    counted = re.finditer(r"^STATUS (\d+) (\d+)$", output, re.MULTILINE)
    statuses = {match.group(1): int(match.group(2)) for match in counted}
    errors = re.search(r"^ERRORS (\d+)$", output, re.MULTILINE)
    if errors and int(errors.group(1)):
        statuses["socket_error"] = int(errors.group(1))
    return {
        "statuses": statuses,
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "per_s": statuses.get("200", 0) / seconds,
    }


def python_selections(
    url: str, queries: list[str], k: int, seconds: float, concurrency: int = CONCURRENCY
) -> dict[str, Any]:
    """A closed loop of ``concurrency`` Python threads (no wrk needed)."""
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client_loop(worker: int) -> None:
        n = worker
        with httpx.Client(timeout=60) as client:
            while time.monotonic() < end:
                body = {"query": f"{queries[n % len(queries)]} #{n}", "k": k}
                body["compare_baselines"] = False
                n += concurrency
                started = time.perf_counter()
                status = str(client.post(f"{url}/v1/pools/{POOL}/select", json=body).status_code)
                with lock:
                    statuses[status] += 1
                    latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client_loop, range(concurrency)))
    latencies.sort()
    return {
        "statuses": dict(statuses),
        "p50_ms": 1e3 * statistics.median(latencies),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "per_s": statuses.get("200", 0) / seconds,
    }


def run(quick: bool, k: int = 8) -> dict[str, Any]:
    seconds = 3 if quick else 60
    data_dir = CACHE / f"soak-data{'-quick' if quick else ''}"
    CACHE.mkdir(exist_ok=True)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    queries = build(data_dir, quick)
    # The server reads MMDSHOT_READ_SHARE from this environment, as mmdshot serve does.
    read_share = Settings(embedder="hashing").read_share
    process, url = start_server(data_dir, quick)
    use_wrk = not quick and shutil.which("wrk") is not None
    # The quick mode's Python clients would take the CPU of a small machine from the server.
    concurrency = 4 if quick else CONCURRENCY

    def selections(url: str, queries: list[str], k: int, seconds: int) -> dict[str, Any]:
        if use_wrk:
            return wrk_selections(url, queries, k, seconds)
        return python_selections(url, queries, k, seconds, concurrency)

    rss: dict[str, float] = {}
    try:
        httpx.post(f"{url}/v1/pools/{POOL}/select", json={"query": queries[0]}, timeout=600)
        warmup = selections(url, queries, k, 1 if quick else WARMUP_S)
        before = selections(url, queries, k, seconds)
        started = time.monotonic()
        rss["0"] = rss_mb(process.pid)

        def sample(at: float) -> None:
            time.sleep(max(0.0, started + at - time.monotonic()))
            rss[f"{at:g}"] = rss_mb(process.pid)

        samplers = [
            threading.Thread(target=sample, args=(at,))
            for at in (seconds / 2, seconds, 2 * seconds)
        ]
        for sampler in samplers:
            sampler.start()
        rounds = []
        for number in (1, 2):
            with Writers(url, queries, WRITERS, f"r{number}") as writers:
                selected = selections(url, queries, k, seconds)
            rounds.append({"selections": selected, "writers": writers.report(seconds)})
        for sampler in samplers:
            sampler.join()
        baseline = selections(url, queries, k, seconds)
        pool = httpx.get(f"{url}/v1/pools/{POOL}", timeout=60).json()
    finally:
        process.terminate()
        process.wait(timeout=60)
    with_writers = statistics.mean(r["selections"]["per_s"] for r in rounds)
    without = statistics.mean([before["per_s"], baseline["per_s"]])
    server_errors = sum(
        count
        for part in [
            *(r["selections"] for r in rounds),
            *(r["writers"] for r in rounds),
            before,
            baseline,
        ]
        for status, count in part["statuses"].items()
        if not status.isdigit() or status.startswith("5")
    )
    return {
        "pool_size": 300 if quick else SIZE,
        "pool_size_after": pool["size"],
        "k": k,
        "concurrency": concurrency,
        "writers": WRITERS,
        "upsert_batch": UPSERT_BATCH,
        "round_s": seconds,
        "tool": "wrk 4.1 (selections) and Python httpx threads (writers)"
        if use_wrk
        else "Python httpx threads",
        "embedder": "hashing" if quick else "minilm",
        "read_share": read_share,
        "warmup_s": 1 if quick else WARMUP_S,
        "warmup_per_s": warmup["per_s"],
        "baseline_before": before,
        "rounds": rounds,
        "baseline": baseline,
        "rss_mb": rss,
        "rss_growth_between_rounds": rss[f"{2 * seconds:g}"] / rss[f"{seconds:g}"] - 1.0,
        "throughput_ratio": with_writers / without if without else None,
        "throughput_ratio_vs_after": (
            with_writers / baseline["per_s"] if baseline["per_s"] else None
        ),
        "server_errors": server_errors,
    }


def write(path: Path, quick: bool = False) -> dict[str, Any]:
    """Run the soak (a few seconds when ``quick``) and write the JSON result to ``path``."""
    result = run(quick=quick)
    save_result(path, result)
    return result
